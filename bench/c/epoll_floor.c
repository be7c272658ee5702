/* The floor of the dispatch benchmark: the same 1-byte token ring as libevent's bench.c, on a
 * bare level-triggered epoll loop with no reactor at all, so only the system calls remain.
 *
 *   epoll_floor N ACTIVE WRITES RUNS [MAXEVENTS]   one line per run: elapsed µs, reads
 *
 * With EVBENCH_STEP=1 in the environment each run waits for one byte on stdin first, as in
 * libevent_bench.c.
 *
 * MAXEVENTS is the size of epoll_wait's array: a number (default 4096), or `grow` for libevent's
 * policy (start at 32, double whenever a wait filled the array, up to 4096). evbench runs both
 * and takes the faster as the floor of each cell, so that no reactor can beat the floor merely
 * by sizing its array better.
 *
 * Build: cc -O2 -o epoll_floor epoll_floor.c */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>

/* What each callback does, as macros so that floor_probe.c can include this file and add its
 * measured work; here they are the plain calls, and the program is the floor. */
#ifndef FLOOR_WAIT
#define FLOOR_WAIT(ep, out, n) epoll_wait(ep, out, n, 0)
#endif
#ifndef FLOOR_RECV
#define FLOOR_RECV(fd, buf, len) recv(fd, buf, len, 0)
#endif
#ifndef FLOOR_SEND
#define FLOOR_SEND(fd, buf, len) send(fd, buf, len, 0)
#endif
#ifndef FLOOR_WORK
#define FLOOR_WORK() ((void)0)
#endif
#ifndef FLOOR_SETUP
#define FLOOR_SETUP() 0
#endif

static long long now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

int main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: epoll_floor N ACTIVE WRITES RUNS [MAXEVENTS|grow]\n");
		return 2;
	}
	int n = atoi(argv[1]), active = atoi(argv[2]), nwrites = atoi(argv[3]), runs = atoi(argv[4]);
	if (FLOOR_SETUP() != 0)
		return 2;
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	int *pipes = calloc((size_t)n * 2, sizeof(int));
	int ep = epoll_create1(EPOLL_CLOEXEC);
	int grow = argc > 5 && !strcmp(argv[5], "grow");
	int nevents = grow ? 32 : (argc > 5 ? atoi(argv[5]) : 4096);
	if (nevents < 1 || nevents > 4096) {
		fprintf(stderr, "epoll_floor: MAXEVENTS must be 1..4096 or grow\n");
		return 2;
	}
	struct epoll_event *out = calloc(4096, sizeof *out);
	const char *step_env = getenv("EVBENCH_STEP");
	int step = step_env && !strcmp(step_env, "1");
	for (int i = 0; i < n; i++) {
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, &pipes[2 * i]) == -1) {
			perror("socketpair");
			return 1;
		}
		fcntl(pipes[2 * i], F_SETFL, O_NONBLOCK);
		fcntl(pipes[2 * i + 1], F_SETFL, O_NONBLOCK);
	}
	for (int r = 0; r < runs; r++) {
		unsigned char c;
		if (step && read(0, &c, 1) != 1)
			break;
		/* Untimed setup, as in bench.c: (re)register every read end. */
		for (int i = 0; i < n; i++) {
			struct epoll_event e = {.events = EPOLLIN, .data.u32 = (unsigned)i};
			epoll_ctl(ep, EPOLL_CTL_DEL, pipes[2 * i], NULL);
			epoll_ctl(ep, EPOLL_CTL_ADD, pipes[2 * i], &e);
		}
		/* and one empty pass, as bench.c's untimed loop before the sends. */
		(void)epoll_wait(ep, out, nevents, 0);
		long long count = 0, fired = 0;
		int writes = nwrites, space = n / active * 2;
		for (int i = 0; i < active; i++, fired++)
			(void)send(pipes[i * space + 1], "e", 1, 0);
		long long t0 = now_us();
		do {
			int k = FLOOR_WAIT(ep, out, nevents);
			for (int j = 0; j < k; j++) {
				int idx = (int)out[j].data.u32, widx = idx + 1;
				unsigned char ch;
				ssize_t m = FLOOR_RECV(pipes[2 * idx], &ch, 1);
				if (m > 0)
					count += m;
				FLOOR_WORK();
				if (writes) {
					if (widx >= n)
						widx -= n;
					(void)FLOOR_SEND(pipes[2 * widx + 1], "e", 1);
					writes--;
					fired++;
				}
			}
			if (grow && k == nevents && nevents < 4096)
				nevents *= 2;
		} while (count != fired);
		printf("%lld %lld\n", now_us() - t0, count);
		fflush(stdout);
	}
	return 0;
}
