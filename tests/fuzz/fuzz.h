/*
 * fuzz.h - what every fuzz target of tests/fuzz/ shares.
 *
 * A target is one LLVMFuzzerTestOneInput().  Built with clang and
 * -fsanitize=fuzzer it is a libFuzzer binary; linked with replay.c (any
 * compiler) it is the ctest entry that replays the target's corpus.  Each
 * target checks invariants of what the parsers return, not only that they
 * return: a violated one aborts, which both libFuzzer and ctest report.
 */
#ifndef HUBFS_FUZZ_H
#define HUBFS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                       \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "%s:%d: invariant violated: %s\n",     \
				__FILE__, __LINE__, #cond);                    \
			abort();                                               \
		}                                                              \
	} while (0)

/* The input as a C string (up to its first NUL); caller frees. */
static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (!s)
		abort();
	memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

#endif /* HUBFS_FUZZ_H */
