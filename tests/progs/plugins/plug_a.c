/* Plugin A for tests/e2e/1101-dlopen.sh (built as libplug_a.so).
 *   plug_a_ctor   ELF constructor, runs inside dlopen(): 5 x malloc(50),
 *                 kept (never freed)
 *   plug_a_work   3 x malloc(30), returned to the caller, who frees them
 * plug_b.c is the same code with other names and sizes, so that the two
 * objects have the same layout and the loader can put B where A was. */
#include <stdlib.h>

#define NOINLINE __attribute__((noinline))

static void *ctor_blocks[5];

__attribute__((constructor)) NOINLINE void plug_a_ctor(void)
{
	for (int i = 0; i < 5; i++)
		ctor_blocks[i] = malloc(50);
}

NOINLINE int plug_a_work(void **out)
{
	for (int i = 0; i < 3; i++)
		out[i] = malloc(30);
	return 3;
}
