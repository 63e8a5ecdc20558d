/* Plugin for tests/progs/gt_unwind.c (built as libunw_plug.so):
 * unw_plug_run(n, cb) calls cb(i) n times through two frames of its own,
 * so the backtraces of cb's allocations cross into this object and back. */
#define NOINLINE __attribute__((noinline))

void *volatile unw_plug_sink;

NOINLINE static void plug_inner(int i, void (*cb)(int))
{
	cb(i);
	unw_plug_sink = 0; /* not a tail call */
}

NOINLINE void unw_plug_run(int n, void (*cb)(int))
{
	for (int i = 0; i < n; i++)
		plug_inner(i, cb);
}
