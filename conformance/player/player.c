/* player.c: runs one evloop conformance program (the IR, see ../IR.md) on the system libevent
 * 2.1.12 under a virtual clock, and prints its trace (../TRACE.md) on stdout.
 *
 *   cc -std=gnu11 -O1 -o player player.c -levent -ldl -rdynamic
 *   player epoll|poll|select [IR-FILE]        (the IR is read from stdin without IR-FILE)
 *
 * The executable defines clock_gettime, gettimeofday, getpid, epoll_wait, poll, select and
 * timerfd_settime itself; libevent's calls resolve to these definitions instead of libc's.
 * Every wait first polls for real with a zero timeout; when nothing is ready the virtual clock
 * advances by the requested timeout, or to the next scheduled outside input (`at` blocks),
 * exactly as IR.md ("The virtual clock") specifies. The Rust runner implements the same rule.
 *
 * Exit codes: 0 ok, 2 bad usage or bad IR, 3 libevent setup failed (method not available),
 * 4 a runaway scenario (too many callbacks or waits). */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/param.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

/* ------------------------------------------------------------------------------------------ */
/* Virtual clock                                                                              */

#define START_US 1000000000LL /* both clocks start at exactly 1000 s */
#define PINNED_PID 4242
#define MAX_CALLBACKS 100000L
#define MAX_WAITS 1000000L
/* The virtual clock's horizon (IR.md §6): moving it past 2^62 us after the start is an error
 * (exit 5), as in the Rust runner; vnow_us would overflow not far beyond. */
#define HORIZON_US (1LL << 62)

static long long vnow_us = START_US;

int clock_gettime(clockid_t id, struct timespec *ts)
{
	(void)id;
	ts->tv_sec = (time_t)(vnow_us / 1000000LL);
	ts->tv_nsec = (long)((vnow_us % 1000000LL) * 1000LL);
	return 0;
}

int gettimeofday(struct timeval *restrict tv, void *restrict tz)
{
	(void)tz;
	tv->tv_sec = (time_t)(vnow_us / 1000000LL);
	tv->tv_usec = (suseconds_t)(vnow_us % 1000000LL);
	return 0;
}

/* libevent seeds its weak RNG (poll/select scan start) with gettimeofday sec+usec+getpid(). */
pid_t getpid(void) { return PINNED_PID; }

/* ------------------------------------------------------------------------------------------ */
/* The program                                                                                */

enum op {
	OP_BASE, OP_BODY, OP_PAIR, OP_EVENT, OP_COMMON, OP_END, OP_BEV_PAIR, OP_BEV_SOCKET,
	OP_LISTENER, OP_AT, OP_MAIN,
	OP_IF_CALL, OP_ADD, OP_ADD_TV, OP_ADD_COMMON, OP_DEL, OP_ACTIVE, OP_PRIORITY_SET,
	OP_REMOVE_TIMER, OP_ONCE, OP_ONCE_TV, OP_LOOPEXIT, OP_LOOPEXIT_TV, OP_LOOPBREAK,
	OP_LOOPCONTINUE, OP_WRITE, OP_WRITE_FILL, OP_READ, OP_DRAIN, OP_FILL, OP_SHUTDOWN, OP_CLOSE,
	OP_RAISE, OP_FREE, OP_NEW, OP_PRINT_EVENT, OP_PRINT_COUNTS, OP_PRINT_LOOP, OP_PRINT_BASE,
	OP_PRINT_TIME, OP_LOOP, OP_PRIORITY_INIT, OP_SLEEP,
	OP_BEV_WRITE, OP_BEV_WRITE_FILL, OP_BEV_READ, OP_BEV_DRAIN, OP_BEV_ENABLE, OP_BEV_DISABLE,
	OP_BEV_WATERMARK, OP_BEV_TIMEOUTS, OP_BEV_FLUSH, OP_BEV_FREE, OP_BEV_NEW, OP_BEV_CONNECT,
	OP_BEV_TRIGGER, OP_BEV_TRIGGER_EVENT, OP_BEV_SETCB, OP_BEV_PRINT, OP_LEV_ENABLE,
	OP_LEV_DISABLE, OP_LEV_FREE, OP_CLIENT_CONNECT, OP__COUNT
};

static const struct { const char *name; const char *sig; } opcodes[OP__COUNT] = {
	{"base", "iiiii"}, {"body", "isii"}, {"pair", "iiss"}, {"event", "iiii"},
	{"common", "iis"}, {"end", "is"}, {"bev_pair", "iiiiiss"}, {"bev_socket", "iiiiis"},
	{"listener", "iiiiiiis"}, {"at", "iii"}, {"main", "ii"},
	{"if_call", "iii"}, {"add", "i"}, {"add_tv", "ii"}, {"add_common", "ii"}, {"del", "i"},
	{"active", "iii"}, {"priority_set", "ii"}, {"remove_timer", "i"}, {"once", "iii"},
	{"once_tv", "iiii"}, {"loopexit", ""}, {"loopexit_tv", "i"}, {"loopbreak", ""},
	{"loopcontinue", ""}, {"write", "is"}, {"write_fill", "ii"}, {"read", "ii"},
	{"drain", "ii"}, {"fill", "i"}, {"shutdown", "ii"}, {"close", "i"}, {"raise", "ii"}, {"free", "i"},
	{"new", "i"}, {"print_event", "i"}, {"print_counts", ""}, {"print_loop", ""},
	{"print_base", ""}, {"print_time", ""}, {"loop", "i"}, {"priority_init", "i"},
	{"sleep", "i"},
	{"bev_write", "is"}, {"bev_write_fill", "ii"}, {"bev_read", "ii"}, {"bev_drain", "ii"},
	{"bev_enable", "ii"}, {"bev_disable", "ii"}, {"bev_watermark", "iiii"},
	{"bev_timeouts", "iii"}, {"bev_flush", "iii"}, {"bev_free", "i"}, {"bev_new", "i"},
	{"bev_connect", "ii"}, {"bev_trigger", "iii"}, {"bev_trigger_event", "iii"},
	{"bev_setcb", "ii"}, {"bev_print", "i"}, {"lev_enable", "i"}, {"lev_disable", "i"},
	{"lev_free", "i"}, {"client_connect", "ii"},
};

struct ins {
	int op;
	long long a[8];
	unsigned char *s[2];
	size_t sl[2];
};

struct body { char *name; long long start, count; long calls; };
struct end_ { char *name; int fd; };
/* tv_set: the event was given a timeout since its event_new (otherwise libevent's ev_timeout
 * is uninitialized memory and `print` shows deadline=?) */
/* a declared event: gen counts its event_free calls; its callback argument carries it (ev_arg) */
struct ev { struct event *e; int decl; long long arg; short flags; long long prio; int tv_set; long gen; };
struct common { char *name; const struct timeval *tv; };
struct at { long long time, start, count; };
/* a bufferevent: its declaration and, while live, the libevent object */
struct bev_ {
	struct bufferevent *b;
	char *name;
	long long end;   /* socket end id, -1: fd -1; unused for pairs */
	int opts;
	long long body;  /* read body; write is body+1, event body+2 */
	int is_pair;
	int trig_err;    /* a trigger_event with BEV_EVENT_ERROR awaits its event callback */
};
/* a listener: its declaration, the libevent object while live, the address it was bound to */
struct lev_ {
	struct evconnlistener *l;
	char *name;
	long long end;   /* -1: bound to 127.0.0.1 port 0 */
	int opts;
	long long backlog, body, first_end, nends, next_end;
	struct sockaddr_in addr;
	int has_addr;
	int fd;
};

static struct ins *prog;
static long nprog;
static struct body *bodies;
static long nbodies;
static struct end_ *ends;
static long nends;
static struct ev *evs; /* indexed by body id; decl=0 for once-only bodies */
static struct common *commons;
static long ncommons;
static struct at *ats;
static long nats, at_next;
static struct bev_ *bevs;
static long nbevs;
static struct lev_ *levs;
static long nlevs;
static struct event_base *base;
static const char *method;
static int in_input;      /* performing an `at` block: lines get the "input " prefix */
static int loop_depth;
static int window_open;   /* select only: a ~window marker is open */
static long total_callbacks, total_waits;

static void die(int code, const char *fmt, ...)
{
	va_list ap;
	fflush(stdout);
	fputs("player: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(code);
}

static void *xmalloc(size_t n)
{
	void *p = calloc(1, n ? n : 1);
	if (!p)
		die(2, "out of memory");
	return p;
}

/* ------------------------------------------------------------------------------------------ */
/* Trace output                                                                               */

static void tr(const char *fmt, ...)
{
	va_list ap;
	printf("%lld ", vnow_us - START_US);
	if (in_input)
		fputs("input ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

static const char *what_str(int w)
{
	static char bufs[4][16];
	static int k;
	static const struct { int bit; char c; } L[] = {
		{EV_TIMEOUT, 'T'}, {EV_READ, 'R'}, {EV_WRITE, 'W'}, {EV_SIGNAL, 'S'},
		{EV_PERSIST, 'P'}, {EV_ET, 'E'}, {EV_FINALIZE, 'F'}, {EV_CLOSED, 'C'},
	};
	char *s = bufs[k++ & 3];
	int n = 0;
	for (size_t i = 0; i < sizeof L / sizeof L[0]; i++)
		if (w & L[i].bit)
			s[n++] = L[i].c;
	if (!n)
		s[n++] = '0';
	s[n] = 0;
	return s;
}

static const char *join(int bits, const char *const *names, const int *vals, int n, char *buf)
{
	buf[0] = 0;
	for (int i = 0; i < n; i++)
		if (bits & vals[i]) {
			if (buf[0])
				strcat(buf, "|");
			strcat(buf, names[i]);
		}
	if (!buf[0])
		strcpy(buf, "0");
	return buf;
}

static const char *loop_flags_str(int f)
{
	static char buf[64];
	static const char *const n[] = {"ONCE", "NONBLOCK", "NO_EXIT_ON_EMPTY"};
	static const int v[] = {EVLOOP_ONCE, EVLOOP_NONBLOCK, EVLOOP_NO_EXIT_ON_EMPTY};
	return join(f, n, v, 3, buf);
}

static const char *features_str(int f)
{
	static char buf[64];
	static const char *const n[] = {"ET", "O1", "FDS", "EARLY_CLOSE"};
	static const int v[] = {EV_FEATURE_ET, EV_FEATURE_O1, EV_FEATURE_FDS, EV_FEATURE_EARLY_CLOSE};
	return join(f, n, v, 4, buf);
}

static const struct { const char *name; int num; } signals_[] = {
	{"SIGHUP", SIGHUP}, {"SIGINT", SIGINT}, {"SIGQUIT", SIGQUIT}, {"SIGUSR1", SIGUSR1},
	{"SIGUSR2", SIGUSR2}, {"SIGALRM", SIGALRM}, {"SIGTERM", SIGTERM}, {"SIGCHLD", SIGCHLD},
	{"SIGWINCH", SIGWINCH},
};

static const char *sig_str(int s)
{
	static char buf[32];
	for (size_t i = 0; i < sizeof signals_ / sizeof signals_[0]; i++)
		if (signals_[i].num == s)
			return signals_[i].name;
	snprintf(buf, sizeof buf, "SIG#%d", s);
	return buf;
}

static const char *errno_str(int e)
{
	static char buf[32];
	static const struct { const char *name; int num; } E[] = {
		{"EPERM", EPERM}, {"ENOENT", ENOENT}, {"EINTR", EINTR}, {"EIO", EIO},
		{"EBADF", EBADF}, {"EAGAIN", EAGAIN}, {"ENOMEM", ENOMEM}, {"EACCES", EACCES},
		{"EFAULT", EFAULT}, {"EEXIST", EEXIST}, {"EINVAL", EINVAL}, {"EMFILE", EMFILE},
		{"EPIPE", EPIPE}, {"EDEADLK", EDEADLK}, {"ENOSYS", ENOSYS}, {"ENOTSOCK", ENOTSOCK},
		{"EOPNOTSUPP", EOPNOTSUPP}, {"ECONNABORTED", ECONNABORTED},
		{"ECONNRESET", ECONNRESET}, {"ENOTCONN", ENOTCONN}, {"ECONNREFUSED", ECONNREFUSED},
		{"EINPROGRESS", EINPROGRESS},
	};
	for (size_t i = 0; i < sizeof E / sizeof E[0]; i++)
		if (E[i].num == e)
			return E[i].name;
	snprintf(buf, sizeof buf, "E#%d", e);
	return buf;
}

static void put_escaped(const unsigned char *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = b[i];
		switch (c) {
		case '"': fputs("\\\"", stdout); break;
		case '\\': fputs("\\\\", stdout); break;
		case '\n': fputs("\\n", stdout); break;
		case '\r': fputs("\\r", stdout); break;
		case '\t': fputs("\\t", stdout); break;
		default:
			if (c >= 0x20 && c <= 0x7e)
				putchar(c);
			else
				printf("\\x%02x", c);
		}
	}
}

static const char *how_str(long long h)
{
	return h == SHUT_RD ? "rd" : h == SHUT_WR ? "wr" : h == SHUT_RDWR ? "rdwr" : "?";
}

/* ------------------------------------------------------------------------------------------ */
/* The interpreter                                                                            */

static void run_range(long long start, long long count, long call);

/* The callback argument of a declared event: its body id, a marker bit, and the number of times
 * it was freed before this struct event was made (a `once` body's argument is its bare id). */
#define EV_ARG_DECLARED (1L << 24)
static void *ev_arg(long id)
{
	return (void *)(intptr_t)(id | EV_ARG_DECLARED | (evs[id].gen << 25));
}

static void on_event(evutil_socket_t fd, short what, void *arg)
{
	intptr_t a = (intptr_t)arg;
	long id = (long)(a & (EV_ARG_DECLARED - 1));
	struct body *b = &bodies[id];
	(void)fd;
	/* libevent 2.1.12's event_signal_closure keeps calling a signal event's callback after the
	 * callback re-activated the event (event_active clears ev_pncalls) and then freed it: it
	 * reads the freed struct event (a use-after-free in libevent). What happens then depends
	 * on the allocator, so there is nothing to compare: refuse the scenario. */
	if ((a & EV_ARG_DECLARED) && (!evs[id].e || (long)(a >> 25) != evs[id].gen))
		die(6, "libevent ran the callback of %s after event_free (the freed event's signal "
		       "closure went on: a use-after-free in libevent 2.1.12)", b->name);
	if (++total_callbacks > MAX_CALLBACKS)
		die(4, "more than %ld callbacks: runaway scenario", MAX_CALLBACKS);
	b->calls++;
	tr("cb %s #%ld %s", b->name, b->calls, what_str(what));
	run_range(b->start, b->count, b->calls);
}

static int end_fd(long long id) { return ends[id].fd; }

static struct timeval us_tv(long long us)
{
	struct timeval tv;
	tv.tv_sec = (time_t)(us / 1000000LL);
	tv.tv_usec = (suseconds_t)(us % 1000000LL);
	return tv;
}

static long long tv_us(const struct timeval *tv)
{
	return (long long)tv->tv_sec * 1000000LL + tv->tv_usec - START_US;
}

static struct event *new_event(long id)
{
	struct ev *v = &evs[id];
	evutil_socket_t fd = (v->flags & EV_SIGNAL) ? (evutil_socket_t)v->arg
			   : v->arg < 0 ? -1 : end_fd(v->arg);
	struct event *e = event_new(base, fd, v->flags, on_event, ev_arg(id));
	if (!e)
		die(3, "event_new failed for %s", bodies[id].name);
	v->tv_set = 0;
	return e;
}

/* The event of id, or NULL after printing "OP NAME dead". */
static struct event *live(long long id, const char *op)
{
	if (!evs[id].e)
		tr("%s %s dead", op, bodies[id].name);
	return evs[id].e;
}

/* ---- bufferevents and listeners ---- */

static size_t in_len(struct bufferevent *b) { return evbuffer_get_length(bufferevent_get_input(b)); }
static size_t out_len(struct bufferevent *b) { return evbuffer_get_length(bufferevent_get_output(b)); }

static const char *bev_what_str(int w)
{
	static char buf[96];
	static const struct { int bit; const char *name; } W[] = {
		{BEV_EVENT_READING, "READING"}, {BEV_EVENT_WRITING, "WRITING"}, {BEV_EVENT_EOF, "EOF"},
		{BEV_EVENT_ERROR, "ERROR"}, {BEV_EVENT_TIMEOUT, "TIMEOUT"},
		{BEV_EVENT_CONNECTED, "CONNECTED"},
	};
	int known = 0;
	buf[0] = 0;
	for (size_t i = 0; i < sizeof W / sizeof W[0]; i++) {
		known |= W[i].bit;
		if (w & W[i].bit) {
			if (buf[0])
				strcat(buf, "|");
			strcat(buf, W[i].name);
		}
	}
	if (w & ~known & 0xffff) {
		char x[16];
		snprintf(x, sizeof x, "%s0x%x", buf[0] ? "|" : "", w & ~known & 0xffff);
		strcat(buf, x);
	}
	if (!buf[0])
		strcpy(buf, "0");
	return buf;
}

static const char *trig_opts_str(int o)
{
	static char buf[64];
	static const char *const n[] = {"IGNORE_WATERMARKS", "DEFER_CALLBACKS"};
	static const int v[] = {BEV_TRIG_IGNORE_WATERMARKS, BEV_TRIG_DEFER_CALLBACKS};
	return join(o, n, v, 2, buf);
}

static const char *flush_mode_str(long long m)
{
	return m == BEV_NORMAL ? "NORMAL" : m == BEV_FLUSH ? "FLUSH" : m == BEV_FINISHED ? "FINISHED" : "?";
}

/* kind: 0 read, 1 write, 2 event */
static void bev_cb(struct bufferevent *b, long id, int kind, short what, int err)
{
	struct body *bd = &bodies[bevs[id].body + kind];
	if (++total_callbacks > MAX_CALLBACKS)
		die(4, "more than %ld callbacks: runaway scenario", MAX_CALLBACKS);
	bd->calls++;
	if (kind < 2)
		tr("cb %s #%ld in=%zu out=%zu", bd->name, bd->calls, in_len(b), out_len(b));
	else if ((what & BEV_EVENT_ERROR) && bevs[id].trig_err) {
		/* the errno of a triggered error is whatever the last syscall left (TRACE.md) */
		bevs[id].trig_err = 0;
		tr("cb %s #%ld %s err=? in=%zu out=%zu", bd->name, bd->calls, bev_what_str(what),
		   in_len(b), out_len(b));
	} else if (what & BEV_EVENT_ERROR)
		tr("cb %s #%ld %s err=%s in=%zu out=%zu", bd->name, bd->calls, bev_what_str(what),
		   errno_str(err), in_len(b), out_len(b));
	else
		tr("cb %s #%ld %s in=%zu out=%zu", bd->name, bd->calls, bev_what_str(what), in_len(b),
		   out_len(b));
	run_range(bd->start, bd->count, bd->calls);
}

static void bev_readcb(struct bufferevent *b, void *arg) { bev_cb(b, (long)(intptr_t)arg, 0, 0, 0); }
static void bev_writecb(struct bufferevent *b, void *arg) { bev_cb(b, (long)(intptr_t)arg, 1, 0, 0); }
static void bev_eventcb(struct bufferevent *b, short what, void *arg)
{
	int err = errno;
	bev_cb(b, (long)(intptr_t)arg, 2, what, err);
}

static void bev_set_callbacks(long id, int bits)
{
	bufferevent_setcb(bevs[id].b, (bits & 1) ? bev_readcb : NULL, (bits & 2) ? bev_writecb : NULL,
			  (bits & 4) ? bev_eventcb : NULL, (void *)(intptr_t)id);
}

/* bufferevent_socket_new for a socket bufferevent's declaration; 0 or -1 */
static int bev_make_socket(long id)
{
	struct bev_ *v = &bevs[id];
	evutil_socket_t fd = v->end < 0 ? -1 : end_fd(v->end);
	v->b = bufferevent_socket_new(base, fd, v->opts);
	if (!v->b)
		return -1;
	bev_set_callbacks(id, 7);
	return 0;
}

/* The bufferevent of id, or NULL after printing "OP NAME dead". */
static struct bufferevent *bev_live(long long id, const char *op)
{
	if (!bevs[id].b)
		tr("%s %s dead", op, bevs[id].name);
	return bevs[id].b;
}

static struct evconnlistener *lev_live(long long id, const char *op)
{
	if (!levs[id].l)
		tr("%s %s dead", op, levs[id].name);
	return levs[id].l;
}

static void lev_acceptcb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int socklen,
			 void *arg)
{
	long id = (long)(intptr_t)arg;
	struct lev_ *v = &levs[id];
	struct body *bd = &bodies[v->body];
	const char *endname = "-";
	(void)l;
	(void)sa;
	(void)socklen;
	if (++total_callbacks > MAX_CALLBACKS)
		die(4, "more than %ld callbacks: runaway scenario", MAX_CALLBACKS);
	if (v->next_end < v->first_end + v->nends) {
		ends[v->next_end].fd = fd;
		endname = ends[v->next_end].name;
		v->next_end++;
	} else {
		close(fd);
	}
	bd->calls++;
	tr("cb %s #%ld %s", bd->name, bd->calls, endname);
	run_range(bd->start, bd->count, bd->calls);
}

static void lev_errorcb(struct evconnlistener *l, void *arg)
{
	int err = errno;
	long id = (long)(intptr_t)arg;
	struct body *bd = &bodies[levs[id].body + 1];
	(void)l;
	if (++total_callbacks > MAX_CALLBACKS)
		die(4, "more than %ld callbacks: runaway scenario", MAX_CALLBACKS);
	bd->calls++;
	tr("cb %s #%ld err=%s", bd->name, bd->calls, errno_str(err));
	run_range(bd->start, bd->count, bd->calls);
}

/* A blocking TCP connect to a listener's address; the connected socket is made nonblocking. */
static int client_connect(long long lev, int *fd_out)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return errno;
	if (!levs[lev].has_addr) {
		close(fd);
		return EINVAL;
	}
	if (connect(fd, (struct sockaddr *)&levs[lev].addr, sizeof levs[lev].addr) < 0) {
		int e = errno;
		close(fd);
		return e;
	}
	evutil_make_socket_nonblocking(fd);
	*fd_out = fd;
	return 0;
}

static void do_write(long long end, const unsigned char *buf, size_t n)
{
	ssize_t r = write(end_fd(end), buf, n);
	if (r < 0)
		tr("write %s err=%s", ends[end].name, errno_str(errno));
	else
		tr("write %s n=%ld", ends[end].name, (long)r);
}

static void exec(const struct ins *in)
{
	struct event *e;
	struct timeval tv;
	const long long *a = in->a;
	int rc;

	switch (in->op) {
	case OP_ADD:
		if ((e = live(a[0], "add")))
			tr("add %s rc=%d", bodies[a[0]].name, event_add(e, NULL));
		break;
	case OP_ADD_TV:
		if ((e = live(a[0], "add"))) {
			tv = us_tv(a[1]);
			rc = event_add(e, &tv);
			if (rc == 0)
				evs[a[0]].tv_set = 1;
			tr("add %s tv=%lld rc=%d", bodies[a[0]].name, a[1], rc);
		}
		break;
	case OP_ADD_COMMON:
		if ((e = live(a[0], "add"))) {
			rc = event_add(e, commons[a[1]].tv);
			if (rc == 0)
				evs[a[0]].tv_set = 1;
			tr("add %s common=%s rc=%d", bodies[a[0]].name, commons[a[1]].name, rc);
		}
		break;
	case OP_DEL:
		if ((e = live(a[0], "del")))
			tr("del %s rc=%d", bodies[a[0]].name, event_del(e));
		break;
	case OP_ACTIVE:
		if ((e = live(a[0], "active"))) {
			/* print first: the line shows the call, not its consequences */
			tr("active %s %s ncalls=%lld", bodies[a[0]].name, what_str((int)a[1]), a[2]);
			event_active(e, (int)a[1], (short)a[2]);
		}
		break;
	case OP_PRIORITY_SET:
		if ((e = live(a[0], "priority_set")))
			tr("priority_set %s %lld rc=%d", bodies[a[0]].name, a[1], event_priority_set(e, (int)a[1]));
		break;
	case OP_REMOVE_TIMER:
		if ((e = live(a[0], "remove_timer")))
			tr("remove_timer %s rc=%d", bodies[a[0]].name, event_remove_timer(e));
		break;
	case OP_ONCE:
	case OP_ONCE_TV: {
		evutil_socket_t fd = (a[2] & EV_SIGNAL) ? (evutil_socket_t)a[1] : a[1] < 0 ? -1 : end_fd(a[1]);
		tv = us_tv(in->op == OP_ONCE_TV ? a[3] : 0);
		rc = event_base_once(base, fd, (short)a[2], on_event, (void *)(intptr_t)a[0],
				     in->op == OP_ONCE_TV ? &tv : NULL);
		if (in->op == OP_ONCE_TV)
			tr("once %s %s tv=%lld rc=%d", bodies[a[0]].name, what_str((int)a[2]), a[3], rc);
		else
			tr("once %s %s rc=%d", bodies[a[0]].name, what_str((int)a[2]), rc);
		break;
	}
	case OP_LOOPEXIT:
		tr("loopexit rc=%d", event_base_loopexit(base, NULL));
		break;
	case OP_LOOPEXIT_TV:
		tv = us_tv(a[0]);
		rc = event_base_loopexit(base, &tv);
		tr("loopexit tv=%lld rc=%d", a[0], rc);
		break;
	case OP_LOOPBREAK:
		tr("loopbreak rc=%d", event_base_loopbreak(base));
		break;
	case OP_LOOPCONTINUE:
		tr("loopcontinue rc=%d", event_base_loopcontinue(base));
		break;
	case OP_WRITE:
		do_write(a[0], in->s[0], in->sl[0]);
		break;
	case OP_WRITE_FILL: {
		unsigned char *buf = xmalloc((size_t)a[1]);
		for (long long i = 0; i < a[1]; i++)
			buf[i] = (unsigned char)('a' + i % 26);
		do_write(a[0], buf, (size_t)a[1]);
		free(buf);
		break;
	}
	case OP_READ: {
		unsigned char *buf = xmalloc((size_t)a[1]);
		ssize_t r = read(end_fd(a[0]), buf, (size_t)a[1]);
		if (r < 0) {
			tr("read %s err=%s", ends[a[0]].name, errno_str(errno));
		} else if (r == 0) {
			tr("read %s eof", ends[a[0]].name);
		} else if (r > 64) {
			tr("read %s n=%ld", ends[a[0]].name, (long)r);
		} else {
			printf("%lld %sread %s n=%ld \"", vnow_us - START_US, in_input ? "input " : "",
			       ends[a[0]].name, (long)r);
			put_escaped(buf, (size_t)r);
			fputs("\"\n", stdout);
		}
		free(buf);
		break;
	}
	case OP_DRAIN: {
		unsigned char buf[4096];
		long long total = 0;
		char count[40] = "";
		ssize_t r;
		while ((r = read(end_fd(a[0]), buf, sizeof buf)) > 0)
			total += r;
		if (a[1])
			snprintf(count, sizeof count, " n=%lld", total);
		if (r == 0)
			tr("drain %s%s eof", ends[a[0]].name, count);
		else
			tr("drain %s%s err=%s", ends[a[0]].name, count, errno_str(errno));
		break;
	}
	case OP_FILL: {
		static unsigned char buf[4096];
		memset(buf, 'f', sizeof buf);
		while (write(end_fd(a[0]), buf, sizeof buf) > 0)
			;
		tr("fill %s err=%s", ends[a[0]].name, errno_str(errno));
		break;
	}
	case OP_SHUTDOWN:
		if (shutdown(end_fd(a[0]), (int)a[1]) < 0)
			tr("shutdown %s %s err=%s", ends[a[0]].name, how_str(a[1]), errno_str(errno));
		else
			tr("shutdown %s %s rc=0", ends[a[0]].name, how_str(a[1]));
		break;
	case OP_CLOSE:
		if (close(end_fd(a[0])) < 0) {
			tr("close %s err=%s", ends[a[0]].name, errno_str(errno));
		} else {
			tr("close %s rc=0", ends[a[0]].name);
			ends[a[0]].fd = -1;
		}
		break;
	case OP_RAISE:
		tr("raise %s count=%lld", sig_str((int)a[0]), a[1]);
		for (long long i = 0; i < a[1]; i++)
			raise((int)a[0]);
		break;
	case OP_FREE:
		if ((e = live(a[0], "free"))) {
			event_free(e);
			evs[a[0]].e = NULL;
			evs[a[0]].gen++;
			tr("free %s", bodies[a[0]].name);
		}
		break;
	case OP_NEW:
		if (evs[a[0]].e) {
			tr("new %s live", bodies[a[0]].name);
		} else {
			evs[a[0]].e = new_event((long)a[0]);
			rc = evs[a[0]].prio >= 0 ? event_priority_set(evs[a[0]].e, (int)evs[a[0]].prio) : 0;
			tr("new %s rc=%d", bodies[a[0]].name, rc);
		}
		break;
	case OP_PRINT_EVENT:
		if ((e = live(a[0], "pending"))) {
			int f = event_pending(e, EV_TIMEOUT | EV_READ | EV_WRITE | EV_SIGNAL | EV_CLOSED, &tv);
			if ((f & EV_TIMEOUT) && !evs[a[0]].tv_set)
				tr("pending %s %s deadline=? prio=%d", bodies[a[0]].name, what_str(f),
				   event_get_priority(e));
			else if (f & EV_TIMEOUT)
				tr("pending %s %s deadline=%lld prio=%d", bodies[a[0]].name, what_str(f),
				   tv_us(&tv), event_get_priority(e));
			else
				tr("pending %s %s deadline=- prio=%d", bodies[a[0]].name, what_str(f),
				   event_get_priority(e));
		}
		break;
	case OP_PRINT_COUNTS:
		tr("counts added=%d active=%d", event_base_get_num_events(base, EVENT_BASE_COUNT_ADDED),
		   event_base_get_num_events(base, EVENT_BASE_COUNT_ACTIVE));
		break;
	case OP_PRINT_LOOP:
		tr("got exit=%d break=%d", event_base_got_exit(base), event_base_got_break(base));
		break;
	case OP_PRINT_BASE:
		tr("base method=%s features=%s priorities=%d", event_base_get_method(base),
		   features_str(event_base_get_features(base)), event_base_get_npriorities(base));
		break;
	case OP_PRINT_TIME:
		event_base_gettimeofday_cached(base, &tv);
		tr("time cached=%lld", tv_us(&tv));
		break;
	case OP_LOOP:
		tr("loop flags=%s", loop_flags_str((int)a[0]));
		loop_depth++;
		rc = event_base_loop(base, (int)a[0]);
		if (--loop_depth == 0 && window_open) {
			puts("~window-end");
			window_open = 0;
		}
		tr("loop-end rc=%d", rc);
		break;
	case OP_PRIORITY_INIT:
		tr("priority_init %lld rc=%d", a[0], event_base_priority_init(base, (int)a[0]));
		break;
	case OP_SLEEP:
		if (a[0] > 0 && a[0] > HORIZON_US - (vnow_us - START_US))
			die(5, "the virtual clock would pass its horizon of 2^62 us (%lld us) after the start",
			    HORIZON_US);
		tr("sleep %lld", a[0]);
		vnow_us += a[0];
		break;
	case OP_BEV_WRITE:
	case OP_BEV_WRITE_FILL: {
		struct bufferevent *b;
		if ((b = bev_live(a[0], "write"))) {
			const unsigned char *data = in->s[0];
			size_t n = in->sl[0];
			unsigned char *buf = NULL;
			if (in->op == OP_BEV_WRITE_FILL) {
				n = (size_t)a[1];
				buf = xmalloc(n);
				for (size_t i = 0; i < n; i++)
					buf[i] = (unsigned char)('a' + i % 26);
				data = buf;
			}
			rc = bufferevent_write(b, data, n);
			tr("write %s n=%zu rc=%d in=%zu out=%zu", bevs[a[0]].name, n, rc, in_len(b), out_len(b));
			free(buf);
		}
		break;
	}
	case OP_BEV_READ: {
		struct bufferevent *b;
		if ((b = bev_live(a[0], "read"))) {
			unsigned char *buf = xmalloc((size_t)a[1]);
			size_t n = bufferevent_read(b, buf, (size_t)a[1]);
			if (n >= 1 && n <= 64) {
				printf("%lld %sread %s n=%zu \"", vnow_us - START_US, in_input ? "input " : "",
				       bevs[a[0]].name, n);
				put_escaped(buf, n);
				printf("\" in=%zu out=%zu\n", in_len(b), out_len(b));
			} else {
				tr("read %s n=%zu in=%zu out=%zu", bevs[a[0]].name, n, in_len(b), out_len(b));
			}
			free(buf);
		}
		break;
	}
	case OP_BEV_DRAIN: {
		struct bufferevent *b;
		if ((b = bev_live(a[0], "drain"))) {
			size_t n = a[1] < 0 ? in_len(b) : (size_t)a[1];
			rc = evbuffer_drain(bufferevent_get_input(b), n);
			tr("drain %s n=%zu rc=%d in=%zu out=%zu", bevs[a[0]].name, n, rc, in_len(b), out_len(b));
		}
		break;
	}
	case OP_BEV_ENABLE:
	case OP_BEV_DISABLE: {
		struct bufferevent *b;
		const char *op = in->op == OP_BEV_ENABLE ? "enable" : "disable";
		if ((b = bev_live(a[0], op))) {
			rc = in->op == OP_BEV_ENABLE ? bufferevent_enable(b, (short)a[1])
						     : bufferevent_disable(b, (short)a[1]);
			tr("%s %s %s rc=%d", op, bevs[a[0]].name, what_str((int)a[1]), rc);
		}
		break;
	}
	case OP_BEV_WATERMARK: {
		struct bufferevent *b;
		if ((b = bev_live(a[0], "watermark"))) {
			bufferevent_setwatermark(b, (short)a[1], (size_t)a[2], (size_t)a[3]);
			tr("watermark %s %s %lld %lld", bevs[a[0]].name, what_str((int)a[1]), a[2], a[3]);
		}
		break;
	}
	case OP_BEV_TIMEOUTS: {
		struct bufferevent *b;
		if ((b = bev_live(a[0], "timeouts"))) {
			struct timeval r = us_tv(a[1]), w = us_tv(a[2]);
			rc = bufferevent_set_timeouts(b, a[1] ? &r : NULL, a[2] ? &w : NULL);
			tr("timeouts %s read=%lld write=%lld rc=%d", bevs[a[0]].name, a[1], a[2], rc);
		}
		break;
	}
	case OP_BEV_FLUSH: {
		struct bufferevent *b;
		if ((b = bev_live(a[0], "flush"))) {
			rc = bufferevent_flush(b, (short)a[1], (enum bufferevent_flush_mode)a[2]);
			tr("flush %s %s %s rc=%d", bevs[a[0]].name, what_str((int)a[1]), flush_mode_str(a[2]), rc);
		}
		break;
	}
	case OP_BEV_FREE: {
		struct bufferevent *b;
		if ((b = bev_live(a[0], "free"))) {
			bufferevent_free(b);
			bevs[a[0]].b = NULL;
			tr("free %s", bevs[a[0]].name);
		}
		break;
	}
	case OP_BEV_NEW:
		if (bevs[a[0]].b)
			tr("new %s live", bevs[a[0]].name);
		else
			tr("new %s rc=%d", bevs[a[0]].name, bev_make_socket((long)a[0]));
		break;
	case OP_BEV_CONNECT: {
		struct bufferevent *b;
		if ((b = bev_live(a[0], "connect"))) {
			struct lev_ *l = &levs[a[1]];
			rc = l->has_addr ? bufferevent_socket_connect(b, (struct sockaddr *)&l->addr, sizeof l->addr) : -1;
			tr("connect %s %s rc=%d", bevs[a[0]].name, l->name, rc);
		}
		break;
	}
	case OP_BEV_TRIGGER: {
		struct bufferevent *b;
		if ((b = bev_live(a[0], "trigger"))) {
			if (a[2])
				tr("trigger %s %s %s", bevs[a[0]].name, what_str((int)a[1]), trig_opts_str((int)a[2]));
			else
				tr("trigger %s %s", bevs[a[0]].name, what_str((int)a[1]));
			bufferevent_trigger(b, (short)a[1], (int)a[2]);
		}
		break;
	}
	case OP_BEV_TRIGGER_EVENT: {
		struct bufferevent *b;
		if ((b = bev_live(a[0], "trigger_event"))) {
			if (a[2])
				tr("trigger_event %s %s %s", bevs[a[0]].name, bev_what_str((int)a[1]),
				   trig_opts_str((int)a[2]));
			else
				tr("trigger_event %s %s", bevs[a[0]].name, bev_what_str((int)a[1]));
			if (a[1] & BEV_EVENT_ERROR)
				bevs[a[0]].trig_err = 1;
			bufferevent_trigger_event(b, (short)a[1], (int)a[2]);
		}
		break;
	}
	case OP_BEV_SETCB: {
		struct bufferevent *b;
		if ((b = bev_live(a[0], "setcb"))) {
			char buf[32] = "";
			static const char *const n[] = {"read", "write", "event"};
			for (int i = 0; i < 3; i++)
				if (a[1] & (1 << i)) {
					if (buf[0])
						strcat(buf, "|");
					strcat(buf, n[i]);
				}
			bev_set_callbacks((long)a[0], (int)a[1]);
			tr("setcb %s %s", bevs[a[0]].name, buf[0] ? buf : "none");
		}
		break;
	}
	case OP_BEV_PRINT: {
		struct bufferevent *b;
		if ((b = bev_live(a[0], "bev"))) {
			size_t rl = 0, rh = 0, wl = 0, wh = 0;
			char partner[128] = "";
			bufferevent_getwatermark(b, EV_READ, &rl, &rh);
			bufferevent_getwatermark(b, EV_WRITE, &wl, &wh);
			if (bevs[a[0]].is_pair) {
				struct bufferevent *p = bufferevent_pair_get_partner(b);
				const char *pn = "-";
				for (long i = 0; p && i < nbevs; i++)
					if (bevs[i].b == p)
						pn = bevs[i].name;
				snprintf(partner, sizeof partner, " partner=%s", pn);
			}
			tr("bev %s in=%zu out=%zu enabled=%s read_wm=%zu,%zu write_wm=%zu,%zu%s", bevs[a[0]].name,
			   in_len(b), out_len(b), what_str(bufferevent_get_enabled(b)), rl, rh, wl, wh, partner);
		}
		break;
	}
	case OP_LEV_ENABLE:
	case OP_LEV_DISABLE: {
		struct evconnlistener *l;
		const char *op = in->op == OP_LEV_ENABLE ? "enable" : "disable";
		if ((l = lev_live(a[0], op))) {
			rc = in->op == OP_LEV_ENABLE ? evconnlistener_enable(l) : evconnlistener_disable(l);
			tr("%s %s rc=%d", op, levs[a[0]].name, rc);
		}
		break;
	}
	case OP_LEV_FREE: {
		struct evconnlistener *l;
		if ((l = lev_live(a[0], "free"))) {
			evconnlistener_free(l);
			levs[a[0]].l = NULL;
			if (levs[a[0]].end >= 0 && (levs[a[0]].opts & LEV_OPT_CLOSE_ON_FREE))
				ends[levs[a[0]].end].fd = -1;
			tr("free %s", levs[a[0]].name);
		}
		break;
	}
	case OP_CLIENT_CONNECT: {
		int fd = -1, err = client_connect(a[1], &fd);
		if (err) {
			tr("connect %s %s err=%s", ends[a[0]].name, levs[a[1]].name, errno_str(err));
		} else {
			ends[a[0]].fd = fd;
			tr("connect %s %s rc=0", ends[a[0]].name, levs[a[1]].name);
		}
		break;
	}
	default:
		die(2, "instruction %s cannot be executed", opcodes[in->op].name);
	}
}

static void run_range(long long start, long long count, long call)
{
	for (long long pc = start; pc < start + count; pc++) {
		const struct ins *in = &prog[pc];
		if (in->op == OP_IF_CALL) {
			if (call < in->a[0] || (in->a[1] >= 0 && call > in->a[1]))
				pc += in->a[2];
			continue;
		}
		exec(in);
	}
}

/* ------------------------------------------------------------------------------------------ */
/* The waits                                                                                  */

/* Performs every outside input due at the virtual time now. */
static void perform_due_inputs(void)
{
	while (at_next < nats && START_US + ats[at_next].time <= vnow_us) {
		in_input = 1;
		run_range(ats[at_next].start, ats[at_next].count, 0);
		in_input = 0;
		at_next++;
	}
}

/* Steps (c) to (e) of the rule, after a zero-timeout real poll found nothing and the request
 * was not zero. req_us < 0 means infinite. Returns 1 if inputs were performed (poll again),
 * 0 if the clock moved to the deadline (return 0), -1 if the wait would block forever. */
static int advance(long long req_us)
{
	long long target;
	if (req_us > HORIZON_US - (vnow_us - START_US))
		die(5, "the virtual clock would pass its horizon of 2^62 us (%lld us) after the start",
		    HORIZON_US);
	target = req_us < 0 ? -1 : vnow_us + req_us;
	if (++total_waits > MAX_WAITS)
		die(4, "more than %ld waits: runaway scenario", MAX_WAITS);
	if (at_next < nats && (target < 0 || START_US + ats[at_next].time <= target)) {
		long long t = START_US + ats[at_next].time;
		if (t > vnow_us)
			vnow_us = t;
		perform_due_inputs();
		return 1;
	}
	if (target >= 0) {
		vnow_us = target;
		return 0;
	}
	tr("blocked-forever");
	return -1;
}

/* With EVENT_BASE_FLAG_PRECISE_TIMER, libevent's epoll backend arms a timerfd and calls
 * epoll_wait(-1). The player keeps the timerfd virtual: the real one is never armed. */
static int vtimer_armed;
static long long vtimer_us;

int timerfd_settime(int fd, int flags, const struct itimerspec *nv, struct itimerspec *old)
{
	(void)fd;
	(void)flags;
	if (old)
		memset(old, 0, sizeof *old);
	vtimer_us = (long long)nv->it_value.tv_sec * 1000000LL + nv->it_value.tv_nsec / 1000;
	vtimer_armed = nv->it_value.tv_sec != 0 || nv->it_value.tv_nsec != 0;
	return 0;
}

typedef int (*epoll_wait_fn)(int, struct epoll_event *, int, int);
typedef int (*poll_fn)(struct pollfd *, nfds_t, int);
typedef int (*select_fn)(int, fd_set *, fd_set *, fd_set *, struct timeval *);

static void *real_fn(const char *name)
{
	void *f = dlsym(RTLD_NEXT, name);
	if (!f)
		die(3, "dlsym(%s) failed", name);
	return f;
}

int epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout)
{
	static epoll_wait_fn real;
	int n, k;
	long long req;
	if (!real)
		real = (epoll_wait_fn)real_fn("epoll_wait");
	n = real(epfd, events, maxevents, 0);
	if (n != 0 || timeout == 0)
		return n;
	req = timeout > 0 ? (long long)timeout * 1000LL : vtimer_armed ? vtimer_us : -1;
	k = advance(req);
	if (k == 1)
		return real(epfd, events, maxevents, 0);
	if (k == 0)
		return 0;
	errno = EDEADLK;
	return -1;
}

int poll(struct pollfd *fds, nfds_t nfds, int timeout)
{
	static poll_fn real;
	int n, k;
	if (!real)
		real = (poll_fn)real_fn("poll");
	n = real(fds, nfds, 0);
	if (n != 0 || timeout == 0)
		return n;
	k = advance(timeout > 0 ? (long long)timeout * 1000LL : -1);
	if (k == 1)
		return real(fds, nfds, 0);
	if (k == 0)
		return 0;
	errno = EDEADLK;
	return -1;
}

static void close_window(void)
{
	if (window_open) {
		puts("~window-end");
		window_open = 0;
	}
}

/* A descriptor of the scenario: a socket end, a listener's socket or a bufferevent's socket
 * (libevent's internal descriptors, such as the signal pipe, are not). */
static int scenario_fd(int fd)
{
	for (long e = 0; e < nends; e++)
		if (ends[e].fd == fd)
			return 1;
	for (long i = 0; i < nlevs; i++)
		if (levs[i].l && levs[i].fd == fd)
			return 1;
	for (long i = 0; i < nbevs; i++)
		if (bevs[i].b && !bevs[i].is_pair && bufferevent_getfd(bevs[i].b) == fd)
			return 1;
	return 0;
}

int select(int nfds, fd_set *r, fd_set *w, fd_set *x, struct timeval *timeout)
{
	static select_fn real;
	size_t sz = nfds > 0 ? (size_t)howmany(nfds, NFDBITS) * sizeof(fd_mask) : 0;
	unsigned char *r0 = NULL, *w0 = NULL, *x0 = NULL;
	struct timeval z = {0, 0};
	int n, k, blocked = 0;
	if (!real)
		real = (select_fn)real_fn("select");
	close_window();
	if (sz) {
		r0 = xmalloc(sz), w0 = xmalloc(sz), x0 = xmalloc(sz);
		if (r) memcpy(r0, r, sz);
		if (w) memcpy(w0, w, sz);
		if (x) memcpy(x0, x, sz);
	}
	n = real(nfds, r, w, x, &z);
	if (n == 0 && !(timeout && timeout->tv_sec == 0 && timeout->tv_usec == 0)) {
		k = advance(timeout ? (long long)timeout->tv_sec * 1000000LL + timeout->tv_usec : -1);
		if (k == 1) {
			if (sz) {
				if (r) memcpy(r, r0, sz);
				if (w) memcpy(w, w0, sz);
				if (x) memcpy(x, x0, sz);
			}
			z.tv_sec = 0;
			z.tv_usec = 0;
			n = real(nfds, r, w, x, &z);
		} else if (k < 0) {
			n = -1;
			blocked = 1;
		}
	}
	free(r0);
	free(w0);
	free(x0);
	if (n > 0) {
		/* count the ready descriptors of the scenario, and libevent's signal pipe with them:
		 * where the scan finds the pipe decides whether the signal callbacks it activates run
		 * before or after the I/O callbacks of the same call (NONDETERMINISM.md §1) */
		int ready = 0, internal = 0;
		for (int fd = 0; fd < nfds; fd++)
			if ((r && FD_ISSET(fd, r)) || (w && FD_ISSET(fd, w)) || (x && FD_ISSET(fd, x))) {
				if (scenario_fd(fd))
					ready++;
				else
					internal++;
			}
		if (ready >= 1 && ready + internal >= 2) {
			ready += internal;
			printf("~window %d\n", ready);
			window_open = 1;
		}
	}
	if (blocked)
		errno = EDEADLK;
	return n;
}

/* ------------------------------------------------------------------------------------------ */
/* Reading the IR                                                                             */

static int unhex(int c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
	     : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Parses a quoted string at *p (pointing at the opening quote). */
static unsigned char *parse_str(const char **p, size_t *len, long lineno)
{
	const char *q = *p + 1;
	unsigned char *out = xmalloc(strlen(q) + 1);
	size_t n = 0;
	for (;;) {
		int c = (unsigned char)*q++;
		if (c == 0 || c == '\n')
			die(2, "IR line %ld: unterminated string", lineno);
		if (c == '"')
			break;
		if (c == '\\') {
			int e = (unsigned char)*q++;
			switch (e) {
			case 'n': c = '\n'; break;
			case 'r': c = '\r'; break;
			case 't': c = '\t'; break;
			case '0': c = 0; break;
			case '\\': c = '\\'; break;
			case '"': c = '"'; break;
			case 'x': {
				int h = unhex((unsigned char)q[0]), l = h < 0 ? -1 : unhex((unsigned char)q[1]);
				if (h < 0 || l < 0)
					die(2, "IR line %ld: bad \\x escape", lineno);
				c = h * 16 + l;
				q += 2;
				break;
			}
			default:
				die(2, "IR line %ld: unknown escape", lineno);
			}
		}
		out[n++] = (unsigned char)c;
	}
	out[n] = 0;
	*len = n;
	*p = q;
	return out;
}

static void read_ir(FILE *f)
{
	char *line = NULL;
	size_t cap = 0, alloc = 0;
	long lineno = 1;
	if (getline(&line, &cap, f) < 0 || strcmp(line, "evloop-ir 1\n") != 0)
		die(2, "the IR must start with the line 'evloop-ir 1'");
	while (getline(&line, &cap, f) >= 0) {
		const char *p = line;
		char *endp;
		char opname[32];
		int w = 0, op, na = 0, ns = 0;
		long idx;
		struct ins *in;
		lineno++;
		if ((size_t)nprog == alloc) {
			alloc = alloc ? alloc * 2 : 64;
			prog = realloc(prog, alloc * sizeof *prog);
			if (!prog)
				die(2, "out of memory");
		}
		in = &prog[nprog];
		memset(in, 0, sizeof *in);
		idx = strtol(p, &endp, 10);
		if (endp == p || idx != nprog)
			die(2, "IR line %ld: expected index %ld", lineno, nprog);
		p = endp;
		while (*p == ' ')
			p++;
		while (*p && *p != ' ' && *p != '\n' && w < 31)
			opname[w++] = *p++;
		opname[w] = 0;
		for (op = 0; op < OP__COUNT; op++)
			if (!strcmp(opcodes[op].name, opname))
				break;
		if (op == OP__COUNT)
			die(2, "IR line %ld: unknown opcode '%s'", lineno, opname);
		in->op = op;
		for (const char *sig = opcodes[op].sig; *sig; sig++) {
			while (*p == ' ')
				p++;
			if (*sig == 'i') {
				long long v = strtoll(p, &endp, 10);
				if (endp == p)
					die(2, "IR line %ld: expected an integer", lineno);
				in->a[na++] = v;
				p = endp;
			} else {
				if (*p != '"')
					die(2, "IR line %ld: expected a string", lineno);
				in->s[ns] = parse_str(&p, &in->sl[ns], lineno);
				ns++;
			}
		}
		while (*p == ' ')
			p++;
		if (*p != '\n' && *p != 0)
			die(2, "IR line %ld: trailing text", lineno);
		nprog++;
	}
	free(line);
}

static void check_range(long long start, long long count, long hdr)
{
	if (start <= hdr || count < 0 || start + count > nprog)
		die(2, "code range %lld+%lld out of bounds", start, count);
}

/* ------------------------------------------------------------------------------------------ */

static void log_to_stderr(int severity, const char *msg)
{
	(void)severity;
	fprintf(stderr, "libevent: %s\n", msg);
}

/*
 * Close every descriptor above stderr that the player inherited. libevent's select backend
 * scans ready descriptors in fd-number order from a start index drawn in [0, nfds), so the
 * numbers the scenario's sockets get decide the order of the callbacks a select() call
 * activates. A parent that leaves descriptors open across exec (a CI runner, a shell with
 * `exec 7<file`) would shift them and change what the player records; with this the first
 * scenario descriptor is always 3, as in the committed fixtures.
 */
static void close_inherited_fds(void)
{
#ifdef SYS_close_range
	if (syscall(SYS_close_range, 3u, ~0u, 0u) == 0)
		return;
#endif
	DIR *d = opendir("/proc/self/fd");
	if (!d) {
		long max = sysconf(_SC_OPEN_MAX);
		for (long fd = 3; fd < (max > 0 && max < 65536 ? max : 65536); fd++)
			close((int)fd);
		return;
	}
	int self = dirfd(d);
	int fds[1024];
	size_t n = 0;
	struct dirent *e;
	while ((e = readdir(d)) && n < sizeof fds / sizeof fds[0]) {
		int fd = atoi(e->d_name);
		if (e->d_name[0] >= '0' && e->d_name[0] <= '9' && fd > 2 && fd != self)
			fds[n++] = fd;
	}
	closedir(d);
	for (size_t i = 0; i < n; i++)
		close(fds[i]);
}

int main(int argc, char **argv)
{
	static const char *const methods[] = {"epoll", "poll", "select"};
	FILE *in = stdin;
	long hdr = -1;
	int ok = 0;

	if (argc < 2 || argc > 3)
		die(2, "usage: player epoll|poll|select [IR-FILE]");
	close_inherited_fds();
	method = argv[1];
	for (int i = 0; i < 3; i++)
		ok |= !strcmp(method, methods[i]);
	if (!ok)
		die(2, "unknown method '%s' (epoll, poll or select)", method);
	if (argc == 3 && !(in = fopen(argv[2], "r")))
		die(2, "cannot open %s", argv[2]);
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	for (size_t i = 0; i < sizeof signals_ / sizeof signals_[0]; i++)
		signal(signals_[i].num, SIG_IGN);
	event_set_log_callback(log_to_stderr);

	read_ir(in);
	for (long i = 0; i < nprog; i++)
		if (prog[i].op == OP_MAIN) {
			hdr = i;
			break;
		}
	if (nprog == 0 || prog[0].op != OP_BASE || hdr < 0)
		die(2, "the IR must start with 'base' and have a 'main' directive");
	for (long i = 0; i < nprog; i++) {
		int op = prog[i].op;
		if ((i <= hdr) != (op <= OP_MAIN))
			die(2, "IR instruction %ld: directives and code are mixed", i);
		if (op == OP_BODY)
			nbodies++;
		else if (op == OP_PAIR)
			nends += 2;
		else if (op == OP_END)
			nends++;
		else if (op == OP_BEV_PAIR)
			nbevs += 2;
		else if (op == OP_BEV_SOCKET)
			nbevs++;
		else if (op == OP_LISTENER)
			nlevs++;
		else if (op == OP_COMMON)
			ncommons++;
		else if (op == OP_AT)
			nats++;
	}
	bodies = xmalloc(sizeof *bodies * (size_t)nbodies);
	evs = xmalloc(sizeof *evs * (size_t)nbodies);
	if (nbodies >= EV_ARG_DECLARED)
		die(2, "too many bodies (%ld)", nbodies);
	ends = xmalloc(sizeof *ends * (size_t)nends);
	commons = xmalloc(sizeof *commons * (size_t)ncommons);
	ats = xmalloc(sizeof *ats * (size_t)nats);
	bevs = xmalloc(sizeof *bevs * (size_t)nbevs);
	levs = xmalloc(sizeof *levs * (size_t)nlevs);

	/* operand checks of the code */
	for (long i = hdr + 1; i < nprog; i++) {
		const struct ins *c = &prog[i];
		switch (c->op) {
		case OP_ADD: case OP_ADD_TV: case OP_ADD_COMMON: case OP_DEL: case OP_ACTIVE:
		case OP_PRIORITY_SET: case OP_REMOVE_TIMER: case OP_FREE: case OP_NEW:
		case OP_PRINT_EVENT: case OP_ONCE: case OP_ONCE_TV:
			if (c->a[0] < 0 || c->a[0] >= nbodies)
				die(2, "IR instruction %ld: no event or body %lld", i, c->a[0]);
			if (c->op == OP_ADD_COMMON && (c->a[1] < 0 || c->a[1] >= ncommons))
				die(2, "IR instruction %ld: no common timeout %lld", i, c->a[1]);
			if ((c->op == OP_ONCE || c->op == OP_ONCE_TV) && !(c->a[2] & EV_SIGNAL) &&
			    (c->a[1] < -1 || c->a[1] >= nends))
				die(2, "IR instruction %ld: no end %lld", i, c->a[1]);
			break;
		case OP_WRITE: case OP_WRITE_FILL: case OP_READ: case OP_DRAIN: case OP_FILL: case OP_SHUTDOWN:
		case OP_CLOSE:
			if (c->a[0] < 0 || c->a[0] >= nends)
				die(2, "IR instruction %ld: no end %lld", i, c->a[0]);
			if ((c->op == OP_WRITE_FILL || c->op == OP_READ) && (c->a[1] < 1 || c->a[1] > 1 << 20))
				die(2, "IR instruction %ld: bad byte count", i);
			break;
		case OP_BEV_WRITE: case OP_BEV_WRITE_FILL: case OP_BEV_READ: case OP_BEV_DRAIN:
		case OP_BEV_ENABLE: case OP_BEV_DISABLE: case OP_BEV_WATERMARK: case OP_BEV_TIMEOUTS:
		case OP_BEV_FLUSH: case OP_BEV_FREE: case OP_BEV_NEW: case OP_BEV_CONNECT: case OP_BEV_TRIGGER:
		case OP_BEV_TRIGGER_EVENT: case OP_BEV_SETCB: case OP_BEV_PRINT:
			if (c->a[0] < 0 || c->a[0] >= nbevs)
				die(2, "IR instruction %ld: no bufferevent %lld", i, c->a[0]);
			if (c->op == OP_BEV_CONNECT && (c->a[1] < 0 || c->a[1] >= nlevs))
				die(2, "IR instruction %ld: no listener %lld", i, c->a[1]);
			if ((c->op == OP_BEV_WRITE_FILL || c->op == OP_BEV_READ) && (c->a[1] < 1 || c->a[1] > 1 << 20))
				die(2, "IR instruction %ld: bad byte count", i);
			break;
		case OP_LEV_ENABLE: case OP_LEV_DISABLE: case OP_LEV_FREE:
			if (c->a[0] < 0 || c->a[0] >= nlevs)
				die(2, "IR instruction %ld: no listener %lld", i, c->a[0]);
			break;
		case OP_CLIENT_CONNECT:
			if (c->a[0] < 0 || c->a[0] >= nends)
				die(2, "IR instruction %ld: no end %lld", i, c->a[0]);
			if (c->a[1] < 0 || c->a[1] >= nlevs)
				die(2, "IR instruction %ld: no listener %lld", i, c->a[1]);
			break;
		default:
			break;
		}
	}

	/* directives, in order */
	{
		const long long *b = prog[0].a;
		struct event_config *cfg = event_config_new();
		for (int i = 0; i < 3; i++)
			if (strcmp(methods[i], method))
				event_config_avoid_method(cfg, methods[i]);
		event_config_set_flag(cfg, EVENT_BASE_FLAG_IGNORE_ENV | (int)b[0]);
		if (b[1] >= 0 || b[2] >= 0) {
			struct timeval tv = us_tv(b[1]);
			event_config_set_max_dispatch_interval(cfg, b[1] >= 0 ? &tv : NULL, (int)b[2], (int)b[3]);
		}
		base = event_base_new_with_config(cfg);
		event_config_free(cfg);
		if (!base)
			die(3, "event_base_new_with_config failed for method %s", method);
		if (strcmp(event_base_get_method(base), method))
			die(3, "asked for %s, libevent chose %s", method, event_base_get_method(base));
		if (event_base_priority_init(base, (int)b[4]) != 0)
			die(3, "event_base_priority_init(%lld) failed", b[4]);
	}
	puts("# evloop-trace v1");
	{
		long nb = 0, ne = 0, nc = 0, na = 0, nbv = 0, nl = 0;
		for (long i = 1; i < hdr; i++) {
			struct ins *d = &prog[i];
			switch (d->op) {
			case OP_BODY:
				if (d->a[0] != nb)
					die(2, "body %lld out of order", d->a[0]);
				check_range(d->a[1], d->a[2], hdr);
				bodies[nb].name = (char *)d->s[0];
				bodies[nb].start = d->a[1];
				bodies[nb].count = d->a[2];
				nb++;
				break;
			case OP_PAIR: {
				int sv[2];
				if (d->a[0] != ne || d->a[1] != ne + 1)
					die(2, "pair ends out of order");
				if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
					die(3, "socketpair: %s", strerror(errno));
				evutil_make_socket_nonblocking(sv[0]);
				evutil_make_socket_nonblocking(sv[1]);
				ends[ne].name = (char *)d->s[0];
				ends[ne].fd = sv[0];
				ends[ne + 1].name = (char *)d->s[1];
				ends[ne + 1].fd = sv[1];
				ne += 2;
				break;
			}
			case OP_EVENT: {
				struct ev *v;
				if (d->a[0] < 0 || d->a[0] >= nb)
					die(2, "event %lld: its body must come first", d->a[0]);
				if (!(d->a[2] & EV_SIGNAL) && (d->a[1] < -1 || d->a[1] >= ne))
					die(2, "event %lld: no end %lld", d->a[0], d->a[1]);
				v = &evs[d->a[0]];
				v->decl = 1;
				v->arg = d->a[1];
				v->flags = (short)d->a[2];
				v->prio = d->a[3];
				v->e = new_event((long)d->a[0]);
				if (v->prio >= 0 && event_priority_set(v->e, (int)v->prio) != 0)
					tr("priority_set %s %lld rc=-1", bodies[d->a[0]].name, v->prio);
				break;
			}
			case OP_COMMON: {
				struct timeval tv = us_tv(d->a[1]);
				if (d->a[0] != nc)
					die(2, "common %lld out of order", d->a[0]);
				commons[nc].name = (char *)d->s[0];
				commons[nc].tv = event_base_init_common_timeout(base, &tv);
				if (!commons[nc].tv)
					die(3, "event_base_init_common_timeout failed");
				tr("common %s idx=%d", commons[nc].name, (int)((commons[nc].tv->tv_usec >> 20) & 0xff));
				nc++;
				break;
			}
			case OP_END:
				if (d->a[0] != ne)
					die(2, "end %lld out of order", d->a[0]);
				ends[ne].name = (char *)d->s[0];
				ends[ne].fd = -1;
				ne++;
				break;
			case OP_BEV_PAIR: {
				struct bufferevent *pr[2];
				if (d->a[0] != nbv || d->a[1] != nbv + 1)
					die(2, "bufferevent pair %lld out of order", d->a[0]);
				for (int k = 0; k < 2; k++)
					if (d->a[3 + k] < 0 || d->a[3 + k] + 2 >= nb)
						die(2, "bufferevent %lld: its bodies must come first", d->a[k]);
				if (bufferevent_pair_new(base, (int)d->a[2], pr) != 0)
					die(3, "bufferevent_pair_new failed");
				for (int k = 0; k < 2; k++) {
					struct bev_ *v = &bevs[nbv + k];
					v->b = pr[k];
					v->name = (char *)d->s[k];
					v->end = -1;
					v->opts = (int)d->a[2];
					v->body = d->a[3 + k];
					v->is_pair = 1;
					bev_set_callbacks(nbv + k, 7);
				}
				nbv += 2;
				break;
			}
			case OP_BEV_SOCKET: {
				struct bev_ *v = &bevs[nbv];
				if (d->a[0] != nbv)
					die(2, "bufferevent %lld out of order", d->a[0]);
				if (d->a[1] < -1 || d->a[1] >= ne)
					die(2, "bufferevent %lld: no end %lld", d->a[0], d->a[1]);
				if (d->a[3] < 0 || d->a[3] + 2 >= nb)
					die(2, "bufferevent %lld: its bodies must come first", d->a[0]);
				v->name = (char *)d->s[0];
				v->end = d->a[1];
				v->opts = (int)d->a[2];
				v->body = d->a[3];
				if (d->a[4] && bev_make_socket(nbv) != 0)
					die(3, "bufferevent_socket_new failed for %s", v->name);
				nbv++;
				break;
			}
			case OP_LISTENER: {
				struct lev_ *v = &levs[nl];
				if (d->a[0] != nl)
					die(2, "listener %lld out of order", d->a[0]);
				if (d->a[1] < -1 || d->a[1] >= ne || d->a[5] < -1 || d->a[5] + d->a[6] > ne)
					die(2, "listener %lld: bad end", d->a[0]);
				if (d->a[4] < 0 || d->a[4] + 1 >= nb)
					die(2, "listener %lld: its bodies must come first", d->a[0]);
				v->name = (char *)d->s[0];
				v->end = d->a[1];
				v->opts = (int)d->a[2];
				v->backlog = d->a[3];
				v->body = d->a[4];
				v->first_end = v->next_end = d->a[5];
				v->nends = d->a[6];
				if (v->end >= 0) {
					v->l = evconnlistener_new(base, lev_acceptcb, (void *)(intptr_t)nl, v->opts, 0,
								  end_fd(v->end));
				} else {
					struct sockaddr_in sin;
					socklen_t len = sizeof sin;
					memset(&sin, 0, sizeof sin);
					sin.sin_family = AF_INET;
					sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
					sin.sin_port = 0;
					v->l = evconnlistener_new_bind(base, lev_acceptcb, (void *)(intptr_t)nl, v->opts,
								       (int)v->backlog, (struct sockaddr *)&sin,
								       sizeof sin);
					if (v->l && getsockname(evconnlistener_get_fd(v->l), (struct sockaddr *)&v->addr,
								&len) == 0)
						v->has_addr = 1;
				}
				if (!v->l)
					die(3, "creating listener %s failed", v->name);
				v->fd = evconnlistener_get_fd(v->l);
				evconnlistener_set_error_cb(v->l, lev_errorcb);
				nl++;
				break;
			}
			case OP_AT:
				check_range(d->a[1], d->a[2], hdr);
				ats[na].time = d->a[0];
				ats[na].start = d->a[1];
				ats[na].count = d->a[2];
				na++;
				break;
			default:
				die(2, "IR instruction %ld: unexpected directive", i);
			}
		}
		/* outside inputs in time order, then IR order (stable insertion sort) */
		for (long i = 1; i < nats; i++) {
			struct at t = ats[i];
			long j = i;
			while (j > 0 && ats[j - 1].time > t.time) {
				ats[j] = ats[j - 1];
				j--;
			}
			ats[j] = t;
		}
	}
	for (long i = 0; i < nbodies; i++)
		if (!evs[i].decl)
			evs[i].e = NULL;
	check_range(prog[hdr].a[0], prog[hdr].a[1], hdr);
	run_range(prog[hdr].a[0], prog[hdr].a[1], 0);
	close_window();
	tr("end");
	for (long i = 0; i < nbodies; i++)
		if (evs[i].e)
			event_free(evs[i].e);
	for (long i = 0; i < nbevs; i++)
		if (bevs[i].b)
			bufferevent_free(bevs[i].b);
	for (long i = 0; i < nlevs; i++)
		if (levs[i].l)
			evconnlistener_free(levs[i].l);
	event_base_free(base);
	fflush(stdout);
	return 0;
}
