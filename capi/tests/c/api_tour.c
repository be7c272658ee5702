/* api_tour.c: exercises libevent 2.1 functions the conformance player does not call, and
 * prints what they return. The test runs the same binary on libevent and on evloop's C ABI
 * and requires identical output. Nothing here depends on descriptor numbers, nor on time beyond
 * which clock a base reads (tour_clocks). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <event2/listener.h>
#include <event2/util.h>

static int ncalls;

static void count_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	ncalls++;
	printf("cb %s what=%d\n", (const char *)arg, what);
}

static void self_cb(evutil_socket_t fd, short what, void *arg)
{
	struct event *ev = arg;
	(void)fd;
	printf("self cb what=%d same=%d\n", what, event_get_callback_arg(ev) == arg);
}

static void fin_cb(struct event *ev, void *arg)
{
	(void)ev;
	printf("finalizer %s\n", (const char *)arg);
}

static void buf_cb(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg)
{
	(void)b;
	printf("buffer cb %s orig=%zu added=%zu deleted=%zu\n", (const char *)arg, info->orig_size,
	       info->n_added, info->n_deleted);
}

static void pair_read(struct bufferevent *bev, void *arg)
{
	char line[64];
	size_t n;
	(void)arg;
	n = bufferevent_read(bev, line, sizeof line - 1);
	line[n] = 0;
	printf("pair read \"%s\"\n", line);
}

static void pair_event(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)arg;
	printf("pair event 0x%x\n", what);
}

static int tcp_connected, tcp_accepted;

static void tcp_event(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	if (what & BEV_EVENT_CONNECTED)
		tcp_connected = 1;
	if (tcp_connected && tcp_accepted)
		event_base_loopbreak(arg);
}

static void tcp_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len,
		       void *arg)
{
	(void)l;
	(void)sa;
	(void)len;
	tcp_accepted = 1;
	evutil_closesocket(fd);
	if (tcp_connected && tcp_accepted)
		event_base_loopbreak(arg);
}

static void tour_tcp(void)
{
	struct event_base *base = event_base_new();
	struct sockaddr_in sin;
	socklen_t slen = sizeof sin;
	struct evconnlistener *l;
	struct bufferevent *bev;
	int r;
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	l = evconnlistener_new_bind(base, tcp_accept, base, LEV_OPT_CLOSE_ON_FREE, -1,
				    (struct sockaddr *)&sin, sizeof sin);
	getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&sin, &slen);
	bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(bev, NULL, NULL, tcp_event, base);
	r = bufferevent_socket_connect_hostname(bev, NULL, AF_INET, "127.0.0.1", 0);
	printf("connect_hostname port 0 rc=%d\n", r);
	r = bufferevent_socket_connect_hostname(bev, NULL, AF_INET, "127.0.0.1", ntohs(sin.sin_port));
	printf("connect_hostname rc=%d dns_error=%d\n", r, bufferevent_socket_get_dns_error(bev));
	r = event_base_dispatch(base);
	printf("tcp dispatch rc=%d connected=%d accepted=%d fd>=0=%d\n", r, tcp_connected,
	       tcp_accepted, bufferevent_getfd(bev) >= 0);
	bufferevent_free(bev);
	evconnlistener_free(l);
	event_base_free(base);
}

static void tour_evbuffer(void)
{
	struct evbuffer *b = evbuffer_new(), *c = evbuffer_new();
	struct evbuffer_ptr p;
	struct evbuffer_iovec v[4];
	char out[64], *line;
	size_t n, eol_len;
	int r;
	struct evbuffer_cb_entry *ent = evbuffer_add_cb(b, buf_cb, "b");

	evbuffer_add(b, "hello ", 6);
	r = evbuffer_add_printf(b, "world %d %s\r\nline2\nrest", 42, "x");
	printf("printf rc=%d len=%zu\n", r, evbuffer_get_length(b));
	p = evbuffer_search(b, "world", 5, NULL);
	printf("search world pos=%ld\n", (long)p.pos);
	p = evbuffer_search(b, "absent", 6, NULL);
	printf("search absent pos=%ld\n", (long)p.pos);
	evbuffer_ptr_set(b, &p, 7, EVBUFFER_PTR_SET);
	p = evbuffer_search(b, "l", 1, &p);
	printf("search l from 7 pos=%ld\n", (long)p.pos);
	p = evbuffer_search_eol(b, NULL, &eol_len, EVBUFFER_EOL_CRLF);
	printf("eol pos=%ld len=%zu\n", (long)p.pos, eol_len);
	line = evbuffer_readln(b, &n, EVBUFFER_EOL_CRLF);
	printf("readln \"%s\" n=%zu left=%zu\n", line, n, evbuffer_get_length(b));
	free(line);
	line = evbuffer_readln(b, &n, EVBUFFER_EOL_LF);
	printf("readln \"%s\" n=%zu\n", line, n);
	free(line);
	printf("readln none=%d\n", evbuffer_readln(b, &n, EVBUFFER_EOL_LF) == NULL);
	evbuffer_cb_clear_flags(b, ent, EVBUFFER_CB_ENABLED);
	evbuffer_prepend(b, ">", 1);
	evbuffer_cb_set_flags(b, ent, EVBUFFER_CB_ENABLED);
	r = (int)evbuffer_copyout(b, out, sizeof out);
	out[r] = 0;
	printf("copyout \"%s\"\n", out);
	printf("pullup \"%.5s\"\n", (char *)evbuffer_pullup(b, -1));
	evbuffer_add_buffer(c, b);
	printf("after add_buffer b=%zu c=%zu\n", evbuffer_get_length(b), evbuffer_get_length(c));
	r = evbuffer_remove_buffer(c, b, 2);
	printf("remove_buffer rc=%d b=%zu c=%zu\n", r, evbuffer_get_length(b), evbuffer_get_length(c));
	r = evbuffer_remove(c, out, 3);
	out[r] = 0;
	printf("remove \"%s\"\n", out);
	r = evbuffer_reserve_space(c, 10, v, 4);
	memcpy(v[0].iov_base, "RESERVED", 8);
	v[0].iov_len = 8;
	printf("reserve rc>0=%d\n", r > 0);
	r = evbuffer_commit_space(c, v, 1);
	printf("commit=%d len=%zu\n", r, evbuffer_get_length(c));
	r = evbuffer_peek(c, -1, NULL, NULL, 0);
	printf("peek extents>0=%d\n", r > 0);
	evbuffer_freeze(c, 0);
	printf("add frozen=%d\n", evbuffer_add(c, "x", 1));
	evbuffer_unfreeze(c, 0);
	r = evbuffer_drain(c, 1000);
	printf("drain=%d len=%zu\n", r, evbuffer_get_length(c));
	printf("remove_cb=%d\n", evbuffer_remove_cb_entry(b, ent));
	evbuffer_add(b, "z", 1);
	evbuffer_free(b);
	evbuffer_free(c);
}

static void tour_events(void)
{
	struct event_config *cfg = event_config_new();
	struct event_base *base;
	struct event stack_ev, *ev, *self;
	struct timeval tv = {0, 5000}, got;
	const struct timeval *common;
	const char **methods = event_get_supported_methods();
	event_callback_fn cb;
	void *arg;
	evutil_socket_t fd;
	short what;
	struct event_base *eb;
	int r;

	printf("version %s 0x%08x\n", event_get_version(), event_get_version_number());
	printf("methods");
	for (int i = 0; methods[i]; i++)
		printf(" %s", methods[i]);
	printf("\n");
	event_config_avoid_method(cfg, "epoll");
	event_config_require_features(cfg, EV_FEATURE_FDS);
	base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	printf("method %s features=%d\n", event_base_get_method(base), event_base_get_features(base));
	printf("struct event size=%zu\n", event_get_struct_event_size());

	printf("initialized before=%d\n", event_initialized(&stack_ev) && 0);
	event_assign(&stack_ev, base, -1, 0, count_cb, "stack");
	printf("initialized=%d pending=%d\n", event_initialized(&stack_ev),
	       event_pending(&stack_ev, EV_TIMEOUT, NULL));
	event_add(&stack_ev, &tv);
	printf("pending after add=%d\n", event_pending(&stack_ev, EV_TIMEOUT | EV_READ, NULL));
	event_get_assignment(&stack_ev, &eb, &fd, &what, &cb, &arg);
	printf("assignment base=%d fd=%d what=%d cb=%d arg=%s\n", eb == base, (int)fd, what,
	       cb == count_cb, (const char *)arg);

	/* uninitialised heap memory, assigned twice, then freed without event_free */
	{
		struct event *m = malloc(event_get_struct_event_size());
		event_assign(m, base, -1, 0, count_cb, "malloc");
		event_assign(m, base, -1, EV_PERSIST, count_cb, "malloc2");
		printf("malloc'd initialized=%d events=%d\n", event_initialized(m), event_get_events(m));
		event_del(m);
		free(m);
	}
	ev = event_new(base, -1, EV_PERSIST, count_cb, "persist");
	printf("get_fd=%d events=%d base=%d prio=%d\n", (int)event_get_fd(ev), event_get_events(ev),
	       event_get_base(ev) == base, event_get_priority(ev));
	self = event_new(base, -1, 0, self_cb, event_self_cbarg());
	event_active(self, EV_TIMEOUT, 0);

	common = event_base_init_common_timeout(base, &tv);
	printf("common same=%d\n", event_base_init_common_timeout(base, &tv) == common);
	event_add(ev, common);
	event_base_once(base, -1, EV_TIMEOUT, count_cb, "once", NULL);
	printf("once signal rc=%d\n", event_base_once(base, SIGUSR1, EV_SIGNAL, count_cb, "x", NULL));
	printf("counts added=%d active=%d\n", event_base_get_num_events(base, EVENT_BASE_COUNT_ADDED),
	       event_base_get_num_events(base, EVENT_BASE_COUNT_ACTIVE));
	r = event_base_loop(base, EVLOOP_ONCE);
	printf("loop once rc=%d\n", r);
	r = event_base_loop(base, EVLOOP_ONCE);
	printf("loop once rc=%d ncalls=%d\n", r, ncalls);
	r = event_remove_timer(ev);
	printf("remove_timer=%d pending=%d\n", r, event_pending(ev, EV_TIMEOUT | EV_READ, NULL));
	event_del(ev);
	printf("priority_set=%d\n", event_priority_set(ev, 3));
	r = event_base_priority_init(base, 4);
	printf("priority_init=%d npri=%d\n", r, event_base_get_npriorities(base));
	printf("priority_set=%d prio=%d\n", event_priority_set(ev, 3), event_get_priority(ev));
	event_base_gettimeofday_cached(base, &got);
	printf("cached>0=%d\n", got.tv_sec > 0);
	r = event_base_loop(base, EVLOOP_NONBLOCK);
	printf("nonblock rc=%d got_exit=%d got_break=%d\n", r, event_base_got_exit(base),
	       event_base_got_break(base));
	event_base_loopbreak(base);
	printf("loopbreak outside a loop: got_break=%d\n", event_base_got_break(base));
	printf("dispatch empty rc=%d\n", event_base_dispatch(base));
	{
		struct event *f1 = event_new(base, -1, 0, count_cb, "fin1");
		struct event f2;
		event_add(f1, &tv);
		event_assign(&f2, base, -1, 0, count_cb, "fin2");
		event_active(&f2, EV_TIMEOUT, 0);
		r = event_free_finalize(0, f1, fin_cb);
		printf("free_finalize=%d\n", r);
		r = event_finalize(0, &f2, fin_cb);
		printf("finalize=%d\n", r);
		r = event_finalize(0, &f2, fin_cb);
		printf("finalize again=%d\n", r);
		r = event_base_loop(base, EVLOOP_NONBLOCK);
		printf("finalizers ran, loop rc=%d\n", r);
	}
	event_free(ev);
	event_free(self);
	event_base_free(base);
}

static void tour_bufferevents(void)
{
	struct event_base *base = event_base_new();
	struct bufferevent *pair[2];
	struct evbuffer *tmp = evbuffer_new();
	size_t lo, hi;
	bufferevent_data_cb rcb;
	void *arg;

	bufferevent_pair_new(base, 0, pair);
	bufferevent_setcb(pair[1], pair_read, NULL, pair_event, "p1");
	bufferevent_getcb(pair[1], &rcb, NULL, NULL, &arg);
	printf("getcb read=%d arg=%s\n", rcb == pair_read, (const char *)arg);
	bufferevent_enable(pair[1], EV_READ);
	printf("partner=%d enabled=%d\n", bufferevent_pair_get_partner(pair[0]) == pair[1],
	       bufferevent_get_enabled(pair[1]));
	bufferevent_setwatermark(pair[1], EV_READ, 2, 100);
	bufferevent_getwatermark(pair[1], EV_READ, &lo, &hi);
	printf("watermark %zu %zu\n", lo, hi);
	bufferevent_write(pair[0], "ping", 4);
	evbuffer_add_printf(tmp, "%s", "pong");
	bufferevent_write_buffer(pair[0], tmp);
	printf("tmp after write_buffer=%zu\n", evbuffer_get_length(tmp));
	event_base_loop(base, EVLOOP_NONBLOCK);
	event_base_loop(base, EVLOOP_NONBLOCK);
	bufferevent_flush(pair[0], EV_WRITE, BEV_FINISHED);
	event_base_loop(base, EVLOOP_NONBLOCK);
	bufferevent_free(pair[0]);
	bufferevent_free(pair[1]);
	evbuffer_free(tmp);
	event_base_free(base);
}

static void tour_evutil(void)
{
	evutil_socket_t sv[2];
	struct sockaddr_storage ss;
	int len = sizeof ss, r;
	char text[64];
	printf("socketpair=%d\n", evutil_socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	printf("nonblocking=%d closeonexec=%d\n", evutil_make_socket_nonblocking(sv[0]),
	       evutil_make_socket_closeonexec(sv[0]));
	printf("close=%d %d\n", evutil_closesocket(sv[0]), evutil_closesocket(sv[1]));
	r = evutil_parse_sockaddr_port("127.0.0.1:8080", (struct sockaddr *)&ss, &len);
	printf("parse=%d len=%d\n", r, len);
	printf("ntop=%s port=%d\n",
	       evutil_inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, text, sizeof text),
	       ntohs(((struct sockaddr_in *)&ss)->sin_port));
	len = sizeof ss;
	r = evutil_parse_sockaddr_port("[::1]:9", (struct sockaddr *)&ss, &len);
	printf("parse6=%d len=%d\n", r, len);
	len = sizeof ss;
	r = evutil_parse_sockaddr_port("not an address", (struct sockaddr *)&ss, &len);
	printf("parse bad=%d\n", r);
	printf("strtoll=%lld\n", (long long)evutil_strtoll("12345", NULL, 10));
	printf("snprintf=%d \"%s\"\n", evutil_snprintf(text, 8, "%s-%d", "abcdef", 7), text);
	printf("strcasecmp=%d\n", evutil_ascii_strcasecmp("HeLLo", "hello"));
	{
		struct evutil_addrinfo hints, *ai = NULL;
		memset(&hints, 0, sizeof hints);
		hints.ai_family = AF_INET;
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_flags = EVUTIL_AI_NUMERICHOST;
		r = evutil_getaddrinfo("127.0.0.1", "80", &hints, &ai);
		printf("getaddrinfo=%d family=%d port=%d\n", r, ai ? ai->ai_family : -1,
		       ai ? ntohs(((struct sockaddr_in *)ai->ai_addr)->sin_port) : -1);
		evutil_freeaddrinfo(ai);
	}
	{
		char path[] = "/tmp/api_tour_XXXXXX";
		int fd = mkstemp(path), fd2;
		struct evbuffer *b = evbuffer_new();
		char out[32];
		if (write(fd, "0123456789", 10) != 10)
			printf("write failed\n");
		fd2 = dup(fd);
		r = evbuffer_add_file(b, fd, 2, 5);
		printf("add_file=%d len=%zu\n", r, evbuffer_get_length(b));
		r = evbuffer_add_file(b, fd2, 8, -1);
		r = (int)evbuffer_remove(b, out, sizeof out - 1);
		out[r] = 0;
		printf("add_file contents \"%s\"\n", out);
		unlink(path);
		evbuffer_free(b);
	}
}

/* Which clock a base or a monotonic timer reads, told apart by behaviour: five pairs of reads,
 * each pair 50 us apart (a spin on CLOCK_MONOTONIC). CLOCK_MONOTONIC moves within every pair;
 * CLOCK_MONOTONIC_COARSE (libevent's default) moves once per scheduler tick (1-10 ms), so at
 * least one pair reads the same time (that all five straddle a tick: below one in a million).
 * "precise" if every pair moved, else "coarse". */
static void spin_50us(void)
{
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	do {
		clock_gettime(CLOCK_MONOTONIC, &b);
	} while ((b.tv_sec - a.tv_sec) * 1000000000L + (b.tv_nsec - a.tv_nsec) < 50000L);
}

static const char *clock_kind(struct event_base *base, struct evutil_monotonic_timer *timer)
{
	int i, same = 0;
	for (i = 0; i < 5; i++) {
		struct timeval t0, t1;
		if (base)
			event_gettime_monotonic(base, &t0);
		else
			evutil_gettime_monotonic(timer, &t0);
		spin_50us();
		if (base)
			event_gettime_monotonic(base, &t1);
		else
			evutil_gettime_monotonic(timer, &t1);
		same += !evutil_timercmp(&t0, &t1, !=);
	}
	return same == 0 ? "precise" : "coarse";
}

static void tour_clocks(void)
{
	struct event_config *cfg;
	struct event_base *base;
	struct evutil_monotonic_timer *timer;
	struct timeval tv;

	base = event_base_new();
	printf("default base clock: %s\n", clock_kind(base, NULL));
	printf("gettime_monotonic(NULL)=%d\n", event_gettime_monotonic(NULL, &tv));
	event_base_free(base);
	cfg = event_config_new();
	event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER);
	base = event_base_new_with_config(cfg);
	printf("precise base clock: %s\n", clock_kind(base, NULL));
	event_base_free(base);
	event_config_free(cfg);

	timer = evutil_monotonic_timer_new();
	printf("configure(0)=%d\n", evutil_configure_monotonic_time(timer, 0));
	printf("timer clock: %s\n", clock_kind(NULL, timer));
	printf("configure(PRECISE)=%d\n", evutil_configure_monotonic_time(timer, EV_MONOT_PRECISE));
	printf("precise timer clock: %s\n", clock_kind(NULL, timer));
	evutil_monotonic_timer_free(timer);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	tour_evbuffer();
	tour_events();
	tour_bufferevents();
	tour_tcp();
	tour_evutil();
	tour_clocks();
	printf("end\n");
	return 0;
}
