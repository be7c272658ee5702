/* The floor of the dispatch benchmark's poll and select rows: the same 1-byte token ring as
 * libevent's bench.c on a bare poll(2) or select(2) loop with no reactor, so that only the
 * system calls and the scan of the result remain (epoll_floor.c is the epoll rows' floor).
 *
 *   poll_floor poll|select N ACTIVE WRITES RUNS   one line per run: elapsed µs, reads
 *
 * The descriptor set is built once. Each run starts with one untimed pass over the whole set,
 * as bench.c's empty loop before it sends the tokens. Each pass hands the set to the kernel as
 * it is (poll: the same pollfd array, whose revents the kernel overwrites; select: a copy of a
 * master fd_set, as libevent's select backend makes), then scans the result in index order and
 * runs the ring's read and write for every readable descriptor. select needs every descriptor below
 * FD_SETSIZE. With EVBENCH_STEP=1 in the environment each run waits for one byte on stdin
 * first, as in libevent_bench.c.
 *
 * Build: cc -O2 -o poll_floor poll_floor.c */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>

static long long now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

int main(int argc, char **argv)
{
	if (argc < 6 || (strcmp(argv[1], "poll") && strcmp(argv[1], "select"))) {
		fprintf(stderr, "usage: poll_floor poll|select N ACTIVE WRITES RUNS\n");
		return 2;
	}
	int use_select = !strcmp(argv[1], "select");
	int n = atoi(argv[2]), active = atoi(argv[3]), nwrites = atoi(argv[4]), runs = atoi(argv[5]);
	if (n < 1 || active < 1 || active > n || nwrites < 0 || runs < 0) {
		fprintf(stderr, "poll_floor: need 1 <= ACTIVE <= N, WRITES >= 0, RUNS >= 0\n");
		return 2;
	}
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	int *pipes = calloc((size_t)n * 2, sizeof(int));
	struct pollfd *pfds = calloc((size_t)n, sizeof *pfds);
	fd_set master, rs;
	FD_ZERO(&master);
	int maxfd = -1;
	for (int i = 0; i < n; i++) {
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, &pipes[2 * i]) == -1) {
			perror("socketpair");
			return 1;
		}
		fcntl(pipes[2 * i], F_SETFL, O_NONBLOCK);
		fcntl(pipes[2 * i + 1], F_SETFL, O_NONBLOCK);
		if (use_select && (pipes[2 * i] >= FD_SETSIZE || pipes[2 * i + 1] >= FD_SETSIZE)) {
			fprintf(stderr, "poll_floor: select needs descriptors below FD_SETSIZE\n");
			return 2;
		}
		pfds[i].fd = pipes[2 * i];
		pfds[i].events = POLLIN;
		if (use_select)
			FD_SET(pipes[2 * i], &master);
		if (pipes[2 * i] > maxfd)
			maxfd = pipes[2 * i];
	}
	const char *step_env = getenv("EVBENCH_STEP");
	int step = step_env && !strcmp(step_env, "1");
	for (int r = 0; r < runs; r++) {
		unsigned char c;
		if (step && read(0, &c, 1) != 1)
			break;
		/* Untimed, as bench.c's empty EVLOOP_ONCE|EVLOOP_NONBLOCK pass before the sends: one
		 * pass over the whole set. Without it the first timed pass meets every socket cold,
		 * and libevent's poll rows (which have that pass) beat this floor by 3-5 % at
		 * n=1000 a=100. */
		if (use_select) {
			struct timeval tv = {0, 0};
			memcpy(&rs, &master, sizeof rs);
			(void)select(maxfd + 1, &rs, NULL, NULL, &tv);
		} else {
			(void)poll(pfds, (nfds_t)n, 0);
		}
		long long count = 0, fired = 0;
		int writes = nwrites, space = n / active * 2;
		for (int i = 0; i < active; i++, fired++)
			(void)send(pipes[i * space + 1], "e", 1, 0);
		long long t0 = now_us();
		do {
			int k;
			if (use_select) {
				struct timeval tv = {0, 0};
				memcpy(&rs, &master, sizeof rs);
				k = select(maxfd + 1, &rs, NULL, NULL, &tv);
			} else {
				k = poll(pfds, (nfds_t)n, 0);
			}
			for (int idx = 0; idx < n && k > 0; idx++) {
				int ready = use_select ? FD_ISSET(pipes[2 * idx], &rs)
						       : (pfds[idx].revents & POLLIN);
				if (!ready)
					continue;
				k--;
				int widx = idx + 1;
				unsigned char ch;
				ssize_t m = recv(pipes[2 * idx], &ch, 1, 0);
				if (m > 0)
					count += m;
				if (writes) {
					if (widx >= n)
						widx -= n;
					(void)send(pipes[2 * widx + 1], "e", 1, 0);
					writes--;
					fired++;
				}
			}
		} while (count != fired);
		printf("%lld %lld\n", now_us() - t0, count);
		fflush(stdout);
	}
	return 0;
}
