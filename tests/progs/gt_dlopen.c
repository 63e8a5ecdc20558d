/* Ground truth for tests/e2e/1101-dlopen.sh. Usage: gt_dlopen DIR
 * dlopen DIR/libplug_a.so (its constructor plug_a_ctor allocates 5 x 50
 * while dlopen runs), plug_a_work (3 x 30, freed here), dlclose A (checked
 * gone with RTLD_NOLOAD), then at once dlopen DIR/libplug_b.so (plug_b_ctor
 * 2 x 20), plug_b_work (4 x 40, freed here), dlclose B.
 * Prints "a_base 0x..", "b_base 0x..", "same_base yes|no" (dladdr of the
 * work functions' objects). Exits 0, or 10+ when a step fails. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

typedef int (*work_fn)(void **out);

static void *run(const char *dir, const char *lib, const char *fn, void **base)
{
	char path[4096];
	void *out[8];
	Dl_info info;

	snprintf(path, sizeof path, "%s/%s", dir, lib);
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		fprintf(stderr, "dlopen %s: %s\n", path, dlerror());
		exit(10);
	}
	work_fn w = (work_fn)dlsym(h, fn);
	if (!w)
		exit(11);
	if (!dladdr((void *)w, &info))
		exit(12);
	*base = info.dli_fbase;
	int n = w(out);
	for (int i = 0; i < n; i++)
		free(out[i]);
	if (dlclose(h) != 0)
		exit(13);
	if (dlopen(path, RTLD_NOW | RTLD_NOLOAD)) {
		fprintf(stderr, "%s still loaded after dlclose\n", path);
		exit(14);
	}
	return h;
}

int main(int argc, char **argv)
{
	void *a, *b;

	if (argc < 2)
		return 2;
	run(argv[1], "libplug_a.so", "plug_a_work", &a);
	run(argv[1], "libplug_b.so", "plug_b_work", &b);
	printf("a_base %p\nb_base %p\nsame_base %s\n", a, b, a == b ? "yes" : "no");
	return 0;
}
