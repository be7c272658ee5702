/* hello_world.c: the seed program of evloop, in C against libevent 2.1's API.
 *
 * A listener on 127.0.0.1:9995 (or the port given as the first argument) answers every
 * connection with "Hello, NewConnection!\n": the accept callback makes a socket bufferevent
 * that closes its socket when freed, enables writing, disables reading and writes the message;
 * the write callback frees the bufferevent once its output has drained to 0 ("flushed answer"),
 * which closes the connection. SIGINT prints a notice and asks the loop to exit two seconds
 * later; when the loop has ended the program frees everything, prints "done" and exits with 0.
 *
 * Built once against libevent, the same binary runs on libevent or, through evloop's C ABI
 * library, on evloop:
 *
 *   cc -O2 -o hello_world examples/c/hello_world.c -levent
 *   ./hello_world                                   # libevent
 *   LD_LIBRARY_PATH=<dir with evloop's libevent-2.1.so.7> ./hello_world   # evloop
 *   nc 127.0.0.1 9995
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

static const char MESSAGE[] = "Hello, NewConnection!\n";
static const unsigned short DEFAULT_PORT = 9995;

/* The answer has left the output buffer: done with this connection. */
static void on_write(struct bufferevent *bev, void *arg)
{
	(void)arg;
	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
		printf("flushed answer\n");
		bufferevent_free(bev);
	}
}

/* The peer went away, or the connection failed. */
static void on_event(struct bufferevent *bev, short what, void *arg)
{
	(void)arg;
	if (what & BEV_EVENT_EOF)
		printf("Connection closed.\n");
	else if (what & BEV_EVENT_ERROR)
		printf("Got an error on the connection: %s\n", strerror(errno));
	bufferevent_free(bev);
}

/* A new connection: answer it. */
static void on_accept(struct evconnlistener *listener, evutil_socket_t fd, struct sockaddr *sa,
		      int socklen, void *arg)
{
	struct event_base *base = arg;
	struct bufferevent *bev;
	(void)listener;
	(void)sa;
	(void)socklen;
	bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!bev) {
		fprintf(stderr, "Error constructing bufferevent!\n");
		event_base_loopbreak(base);
		return;
	}
	bufferevent_setcb(bev, NULL, on_write, on_event, NULL);
	bufferevent_enable(bev, EV_WRITE);
	bufferevent_disable(bev, EV_READ);
	bufferevent_write(bev, MESSAGE, strlen(MESSAGE));
}

/* SIGINT: leave the loop two seconds from now. */
static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct event_base *base = arg;
	struct timeval delay = {2, 0};
	(void)sig;
	(void)what;
	printf("Caught an interrupt signal; exiting cleanly in two seconds.\n");
	event_base_loopexit(base, &delay);
}

int main(int argc, char **argv)
{
	struct event_base *base;
	struct evconnlistener *listener;
	struct event *signal_event;
	struct sockaddr_in sin;
	unsigned short port = DEFAULT_PORT;

	if (argc > 1)
		port = (unsigned short)atoi(argv[1]);
	setvbuf(stdout, NULL, _IOLBF, 0);

	base = event_base_new();
	if (!base) {
		fprintf(stderr, "Could not initialize libevent!\n");
		return 1;
	}

	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons(port);
	listener = evconnlistener_new_bind(base, on_accept, base,
					   LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE, -1,
					   (struct sockaddr *)&sin, sizeof sin);
	if (!listener) {
		fprintf(stderr, "Could not create a listener!\n");
		return 1;
	}

	signal_event = evsignal_new(base, SIGINT, on_signal, base);
	if (!signal_event || event_add(signal_event, NULL) < 0) {
		fprintf(stderr, "Could not create/add a signal event!\n");
		return 1;
	}

	event_base_dispatch(base);

	evconnlistener_free(listener);
	event_free(signal_event);
	event_base_free(base);

	printf("done\n");
	return 0;
}
