/* Allocations outside main: an ELF constructor allocates 3 x 777 bytes that
 * an ELF destructor frees; main allocates 2 x 555 bytes that an atexit
 * handler frees; main also leaks 1 x 333 bytes on purpose.
 *
 *   ctor_alloc       3 calls, 2331 bytes, nothing leaked (freed in dtor_free)
 *   main_alloc       2 calls, 1110 bytes, nothing leaked (freed in atexit_free)
 *   main_leak        1 call, 333 bytes, leaked
 * Usage: gt_ctor [exit|return] — leave main by exit(0) (default) or return.
 * Prints nothing. */
#include <stdlib.h>
#include <string.h>

#define NOINLINE __attribute__((noinline))

static void *ctor_blocks[3];
static void *main_blocks[2];
void *volatile gt_sink;

NOINLINE void ctor_alloc(void)
{
	for (int i = 0; i < 3; i++)
		ctor_blocks[i] = malloc(777);
}

NOINLINE void dtor_free(void)
{
	for (int i = 0; i < 3; i++)
		free(ctor_blocks[i]);
}

__attribute__((constructor)) static void gt_ctor(void)
{
	ctor_alloc();
}

__attribute__((destructor)) static void gt_dtor(void)
{
	dtor_free();
}

NOINLINE void main_alloc(void)
{
	for (int i = 0; i < 2; i++)
		main_blocks[i] = malloc(555);
}

NOINLINE void atexit_free(void)
{
	for (int i = 0; i < 2; i++)
		free(main_blocks[i]);
}

NOINLINE void main_leak(void)
{
	gt_sink = malloc(333);
}

int main(int argc, char **argv)
{
	atexit(atexit_free);
	main_alloc();
	main_leak();
	if (argc > 1 && strcmp(argv[1], "return") == 0)
		return 0;
	exit(0);
}
