/*
 * measure.c - one timed run of a command, for bench/bench.sh and
 * bench/scan.sh (built as build/measure by `make bench`).
 *
 * Usage: measure CMD [ARG...]
 * Starts CMD (stdin, stdout and stderr on /dev/null) with posix_spawnp,
 * waits for it with wait4 and prints one line: "wall_s maxrss_kib cpu_s
 * exit".  wall_s: CLOCK_MONOTONIC from just before the spawn to just after
 * the wait, printed to the microsecond; cpu_s: user + system time of the
 * child's rusage, which Linux accounts precisely as a sum (the split between
 * the two is sampled) and which includes the children the command waited
 * for, so a shell loop counts all its processes; maxrss_kib: the rusage
 * peak resident set (for a loop, its largest process).  A C program, not a
 * script: the spawned process starts with its parent's resident set, which
 * ru_maxrss then counts (a Python parent would add its 13 MiB); this one's
 * is about 1 MiB, as /usr/bin/time's.  Exit: 0 once the line is printed,
 * 127 when CMD cannot be started.
 */
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static double secs(struct timespec t)
{
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double tv(struct timeval t)
{
	return (double)t.tv_sec + (double)t.tv_usec / 1e6;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: measure CMD [ARG...]\n");
		return 2;
	}
	int null = open("/dev/null", O_RDWR);
	if (null < 0) {
		perror("measure: /dev/null");
		return 127;
	}
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	for (int fd = 0; fd < 3; fd++)
		posix_spawn_file_actions_adddup2(&fa, null, fd);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pid_t pid;
	int err = posix_spawnp(&pid, argv[1], &fa, NULL, argv + 1, environ);
	if (err) {
		fprintf(stderr, "measure: %s: %s\n", argv[1], strerror(err));
		return 127;
	}
	int status;
	struct rusage ru;
	if (wait4(pid, &status, 0, &ru) < 0) {
		perror("measure: wait4");
		return 127;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	printf("%.6f %ld %.6f %d\n", secs(t1) - secs(t0), ru.ru_maxrss,
	       tv(ru.ru_utime) + tv(ru.ru_stime), code);
	return 0;
}
