/* Plugin B for tests/e2e/1101-dlopen.sh (built as libplug_b.so): plug_a.c
 * with other names and figures.
 *   plug_b_ctor   ELF constructor, runs inside dlopen(): 2 x malloc(20),
 *                 kept (never freed)
 *   plug_b_work   4 x malloc(40), returned to the caller, who frees them
 */
#include <stdlib.h>

#define NOINLINE __attribute__((noinline))

static void *ctor_blocks[5];

__attribute__((constructor)) NOINLINE void plug_b_ctor(void)
{
	for (int i = 0; i < 2; i++)
		ctor_blocks[i] = malloc(20);
}

NOINLINE int plug_b_work(void **out)
{
	for (int i = 0; i < 4; i++)
		out[i] = malloc(40);
	return 4;
}
