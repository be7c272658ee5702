/* libevent side of evloop's benchmarks (BENCHMARKS.md). Same method as libevent's test/bench.c
 * for `dispatch`; `timers` and `memory` mirror bench/src/main.rs exactly.
 *
 *   libevent_bench dispatch METHOD N ACTIVE WRITES RUNS   one line per run: elapsed µs, callbacks
 *     With EVBENCH_STEP=1 in the environment, each run waits for one byte on stdin first (and
 *     the program ends at end of input, after at most RUNS runs): evbench then interleaves the
 *     runs of all programs of a cell one by one.
 *   libevent_bench timers METHOD COUNT KIND               KIND: spread | equal | churn; prints µs
 *   libevent_bench memory METHOD COUNT                    prints RSS bytes per added event
 *
 * Build: cc -O2 -o libevent_bench libevent_bench.c -levent */
#include <event2/event.h>
#include <event2/event_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/socket.h>

static struct event_base *base;
static long long count, fired;
static int writes, num_pipes;
static int *pipes;
static struct event *events;

/* EVBENCH_STEP=1: wait for one byte on stdin before each run; 0 at end of input. */
static int next_run(void)
{
	static int step = -1;
	unsigned char c;
	if (step < 0) {
		const char *e = getenv("EVBENCH_STEP");
		step = e && !strcmp(e, "1");
	}
	return !step || read(0, &c, 1) == 1;
}

static long long now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

static struct event_base *make_base(const char *method)
{
	static const char *all[] = {"epoll", "poll", "select"};
	struct event_config *cfg = event_config_new();
	for (int i = 0; i < 3; i++)
		if (strcmp(all[i], method))
			event_config_avoid_method(cfg, all[i]);
	event_config_set_flag(cfg, EVENT_BASE_FLAG_IGNORE_ENV);
	struct event_base *b = event_base_new_with_config(cfg);
	event_config_free(cfg);
	if (!b || strcmp(event_base_get_method(b), method)) {
		fprintf(stderr, "cannot use method %s\n", method);
		exit(3);
	}
	return b;
}

static void read_cb(evutil_socket_t fd, short which, void *arg)
{
	long idx = (long)(intptr_t)arg, widx = idx + 1;
	unsigned char ch;
	ssize_t n = recv(fd, &ch, 1, 0);
	(void)which;
	if (n > 0)
		count += n;
	if (writes) {
		if (widx >= num_pipes)
			widx -= num_pipes;
		if (send(pipes[2 * widx + 1], "e", 1, 0) != 1)
			exit(5);
		writes--;
		fired++;
	}
}

static int dispatch(const char *method, int n, int active, int nwrites, int runs)
{
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	base = make_base(method);
	num_pipes = n;
	pipes = calloc((size_t)n * 2, sizeof(int));
	events = calloc((size_t)n, sizeof(struct event));
	for (int i = 0; i < n; i++) {
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, &pipes[2 * i]) == -1) {
			perror("socketpair");
			return 1;
		}
		evutil_make_socket_nonblocking(pipes[2 * i]);
		evutil_make_socket_nonblocking(pipes[2 * i + 1]);
	}
	for (int r = 0; r < runs && next_run(); r++) {
		for (int i = 0; i < n; i++) {
			if (event_initialized(&events[i]))
				event_del(&events[i]);
			event_assign(&events[i], base, pipes[2 * i], EV_READ | EV_PERSIST, read_cb,
				     (void *)(intptr_t)i);
			event_add(&events[i], NULL);
		}
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		fired = 0;
		int space = n / active * 2;
		for (int i = 0; i < active; i++, fired++)
			(void)send(pipes[i * space + 1], "e", 1, 0);
		count = 0;
		writes = nwrites;
		long long t0 = now_us();
		do
			event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		while (count != fired);
		long long t1 = now_us();
		printf("%lld %lld\n", t1 - t0, count);
		fflush(stdout);
	}
	return 0;
}

static long long fired_timers;
static void timer_cb(evutil_socket_t fd, short w, void *arg)
{
	(void)fd, (void)w, (void)arg;
	fired_timers++;
}

/* A small deterministic LCG so both sides draw the same offsets. */
static unsigned long long lcg = 42;
static unsigned next_rand(void)
{
	lcg = lcg * 6364136223846793005ULL + 1442695040888963407ULL;
	return (unsigned)(lcg >> 33);
}

static int timers(const char *method, int n, const char *kind)
{
	base = make_base(method);
	struct event *ev = calloc((size_t)n, sizeof(struct event));
	for (int i = 0; i < n; i++)
		evtimer_assign(&ev[i], base, timer_cb, NULL);
	long long t0 = now_us();
	if (!strcmp(kind, "churn")) {
		for (int i = 0; i < n; i++) {
			struct timeval tv = {10 + (int)(next_rand() % 1000), 0};
			event_add(&ev[i], &tv);
		}
		for (int round = 0; round < 4; round++)
			for (int i = 0; i < n; i++) {
				struct timeval tv = {10 + (int)(next_rand() % 1000), 0};
				if (next_rand() & 1)
					event_del(&ev[i]);
				else
					event_add(&ev[i], &tv);
			}
		for (int i = 0; i < n; i++)
			event_del(&ev[i]);
	} else {
		int spread = !strcmp(kind, "spread");
		for (int i = 0; i < n; i++) {
			struct timeval tv = {0, spread ? (int)(next_rand() % 1000) : 0};
			event_add(&ev[i], &tv);
		}
		event_base_dispatch(base);
		if (fired_timers != n) {
			fprintf(stderr, "fired %lld of %d\n", fired_timers, n);
			return 4;
		}
	}
	printf("%lld\n", now_us() - t0);
	return 0;
}

static long rss_bytes(void)
{
	long pages = 0, resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	if (!f || fscanf(f, "%ld %ld", &pages, &resident) != 2)
		exit(6);
	fclose(f);
	return resident * sysconf(_SC_PAGESIZE);
}

static int memory(const char *method, int n)
{
	base = make_base(method);
	struct event **ev = malloc(sizeof *ev * (size_t)n);
	long before = rss_bytes();
	for (int i = 0; i < n; i++) {
		struct timeval tv = {3600 + i % 1000, 0};
		ev[i] = evtimer_new(base, timer_cb, NULL);
		event_add(ev[i], &tv);
	}
	long after = rss_bytes();
	printf("%.1f\n", (double)(after - before) / n);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 7 && !strcmp(argv[1], "dispatch"))
		return dispatch(argv[2], atoi(argv[3]), atoi(argv[4]), atoi(argv[5]), atoi(argv[6]));
	if (argc >= 5 && !strcmp(argv[1], "timers"))
		return timers(argv[2], atoi(argv[3]), argv[4]);
	if (argc >= 4 && !strcmp(argv[1], "memory"))
		return memory(argv[2], atoi(argv[3]));
	fprintf(stderr, "usage: see the header of libevent_bench.c\n");
	return 2;
}
