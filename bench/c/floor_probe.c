/* The epoll floor (epoll_floor.c, included below) with measured amounts of a reactor's kinds
 * of work added to each callback, to learn what each kind costs next to the system calls
 * (BENCHMARKS.md, "What a callback costs besides its system calls"). With no knob set it is
 * the floor.
 *
 *   floor_probe N ACTIVE WRITES RUNS [MAXEVENTS|grow]   as epoll_floor
 *
 * Knobs (environment):
 *   PAD=K    K iterations of an empty loop per callback (3 instructions each, no memory).
 *   DEPTH=D  each of the three system calls (epoll_wait, recv, send) is made through D more
 *            levels of function call (0, 1 or 2), so D more returns follow each call.
 *   LINES=L  L dependent loads per callback, walking one random cycle through SPAN cache lines
 *   SPAN=S   (default 1024 lines, 64 KiB), so a line comes back every S loads.
 *
 * Build: cc -O2 -o floor_probe floor_probe.c   (epoll_floor.c in the same directory) */
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>

static int depth, pad, lines;
static size_t *chain, at;
static volatile size_t sink;

/* One more level of call around each system call; the empty asm keeps the compiler from
 * turning the call into a jump. */
__attribute__((noinline)) static ssize_t recv1(int fd, void *b, size_t n)
{
	ssize_t r = recv(fd, b, n, 0);
	__asm__ volatile("" ::: "memory");
	return r;
}
__attribute__((noinline)) static ssize_t recv2(int fd, void *b, size_t n)
{
	ssize_t r = recv1(fd, b, n);
	__asm__ volatile("" ::: "memory");
	return r;
}
__attribute__((noinline)) static ssize_t send1(int fd, const void *b, size_t n)
{
	ssize_t r = send(fd, b, n, 0);
	__asm__ volatile("" ::: "memory");
	return r;
}
__attribute__((noinline)) static ssize_t send2(int fd, const void *b, size_t n)
{
	ssize_t r = send1(fd, b, n);
	__asm__ volatile("" ::: "memory");
	return r;
}
__attribute__((noinline)) static int wait1(int ep, struct epoll_event *o, int n)
{
	int r = epoll_wait(ep, o, n, 0);
	__asm__ volatile("" ::: "memory");
	return r;
}
__attribute__((noinline)) static int wait2(int ep, struct epoll_event *o, int n)
{
	int r = wait1(ep, o, n);
	__asm__ volatile("" ::: "memory");
	return r;
}

static ssize_t probe_recv(int fd, void *b, size_t n)
{
	return depth == 2 ? recv2(fd, b, n) : depth == 1 ? recv1(fd, b, n) : recv(fd, b, n, 0);
}
static ssize_t probe_send(int fd, const void *b, size_t n)
{
	return depth == 2 ? send2(fd, b, n) : depth == 1 ? send1(fd, b, n) : send(fd, b, n, 0);
}
static int probe_wait(int ep, struct epoll_event *o, int n)
{
	return depth == 2 ? wait2(ep, o, n) : depth == 1 ? wait1(ep, o, n) : epoll_wait(ep, o, n, 0);
}

static void probe_work(void)
{
	for (int k = 0; k < pad; k++)
		__asm__ volatile("" ::: "memory");
	size_t p = at;
	for (int k = 0; k < lines; k++)
		p = chain[p];
	at = p;
	sink = p;
}

static int knob(const char *name, int def)
{
	const char *v = getenv(name);
	return v ? atoi(v) : def;
}

/* Reads the knobs and builds the cycle: chain[8*i] holds the next line's index, so each load
 * depends on the one before. */
static int probe_setup(void)
{
	depth = knob("DEPTH", 0);
	pad = knob("PAD", 0);
	lines = knob("LINES", 0);
	int span = knob("SPAN", 1024);
	if (depth < 0 || depth > 2 || pad < 0 || lines < 0 || span < 1) {
		fprintf(stderr, "floor_probe: need DEPTH 0..2, PAD >= 0, LINES >= 0, SPAN >= 1\n");
		return -1;
	}
	chain = calloc((size_t)span * 8, sizeof *chain);
	int *perm = malloc((size_t)span * sizeof *perm);
	if (!chain || !perm) {
		fprintf(stderr, "floor_probe: out of memory\n");
		return -1;
	}
	for (int i = 0; i < span; i++)
		perm[i] = i;
	srand(7);
	for (int i = span - 1; i > 0; i--) {
		int j = rand() % (i + 1), t = perm[i];
		perm[i] = perm[j];
		perm[j] = t;
	}
	for (int i = 0; i < span; i++)
		chain[(size_t)perm[i] * 8] = (size_t)perm[(i + 1) % span] * 8;
	at = (size_t)perm[0] * 8;
	free(perm);
	return 0;
}

#define FLOOR_WAIT(ep, out, n) probe_wait(ep, out, n)
#define FLOOR_RECV(fd, buf, len) probe_recv(fd, buf, len)
#define FLOOR_SEND(fd, buf, len) probe_send(fd, buf, len)
#define FLOOR_WORK() probe_work()
#define FLOOR_SETUP() probe_setup()
#include "epoll_floor.c"
