/* Tight malloc+free loop: N pairs (argv[1], default 10000000), sizes 16..1024. */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 10000000L;
	unsigned long sum = 0;
	for (long i = 0; i < n; i++) {
		size_t sz = 16 + (size_t)((i * 37) & 1023);
		char *volatile p = malloc(sz);
		if (!p)
			return 1;
		p[0] = (char)i;
		sum += (unsigned char)p[0];
		free(p);
	}
	printf("tight: %ld pairs, checksum %lu\n", n, sum);
	return 0;
}
