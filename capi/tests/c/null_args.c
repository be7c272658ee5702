/* null_args.c: NULL handles where libevent would crash get evloop's documented error values
 * instead (run on evloop only; on libevent most of these calls are undefined behaviour). */
#include <stdio.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

int main(void)
{
	struct timeval tv = {0, 0};
	char buf[4];
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("%d %d %d %d\n", event_add(NULL, &tv), event_del(NULL), event_pending(NULL, EV_READ, NULL),
	       event_initialized(NULL));
	printf("%d %d %d\n", event_base_loop(NULL, 0), event_base_dispatch(NULL), event_base_loopexit(NULL, NULL));
	printf("%d %d\n", event_base_loopbreak(NULL), event_base_priority_init(NULL, 2));
	printf("%d\n", event_base_get_method(NULL) == NULL);
	printf("%d\n", event_new(NULL, -1, 0, NULL, NULL) == NULL);
	event_free(NULL);
	event_base_free(NULL);
	event_config_free(NULL);
	printf("%zu %d %d\n", evbuffer_get_length(NULL), evbuffer_add(NULL, "x", 1), evbuffer_drain(NULL, 1));
	printf("%d %d\n", evbuffer_remove(NULL, buf, 1), evbuffer_pullup(NULL, -1) == NULL);
	evbuffer_free(NULL);
	printf("%d %d %d\n", bufferevent_write(NULL, "x", 1), bufferevent_enable(NULL, EV_READ),
	       bufferevent_socket_new(NULL, -1, 0) == NULL);
	printf("%zu %d\n", bufferevent_read(NULL, buf, 1), bufferevent_get_input(NULL) == NULL);
	bufferevent_free(NULL);
	printf("%d %d\n", evconnlistener_enable(NULL), evconnlistener_get_fd(NULL));
	evconnlistener_free(NULL);
	printf("end\n");
	return 0;
}
