// Ground truth for tests/e2e/4000-unwind-check.sh: C++ exceptions thrown
// through frames whose destructors allocate, and allocations right after
// a catch (the stack below the catcher was just rewritten by the unwinder).
//
//   throw_at        N_THROW throws of std::runtime_error at depth 1..12 of
//                   descend(); each level holds a Guard
//   Guard::~Guard   one malloc(48) per Guard destroyed while unwinding:
//                   N_GUARDS in all (printed)
//   after_catch     one malloc(72) per caught exception (N_THROW)
//   __cxa_allocate_exception  one allocation per throw (N_THROW)
//
// Prints "guards N" and "throws N".
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

#define NOINLINE __attribute__((noinline))

static const int N_THROW = 2000;
static long n_guards;
void *volatile gt_sink;

struct Guard {
	int depth;
	NOINLINE explicit Guard(int d) : depth(d) {}
	NOINLINE ~Guard()
	{
		void *p = malloc(48);
		gt_sink = p;
		free(p);
		n_guards++;
	}
};

NOINLINE void throw_at(int i)
{
	throw std::runtime_error(i & 1 ? "odd" : "even");
}

NOINLINE void descend(int d, int i)
{
	Guard g(d);
	if (d == 0)
		throw_at(i);
	else
		descend(d - 1, i);
	gt_sink = nullptr;
}

NOINLINE void after_catch(void)
{
	void *p = malloc(72);
	gt_sink = p;
	free(p);
}

NOINLINE int catcher(int i)
{
	try {
		descend(i % 12, i);
	} catch (const std::exception &e) {
		after_catch();
		return e.what()[0] == 'o';
	}
	return 0;
}

int main()
{
	int odd = 0;

	for (int i = 0; i < N_THROW; i++)
		odd += catcher(i);
	std::printf("guards %ld\nthrows %d\n", n_guards, N_THROW);
	return odd == N_THROW / 2 ? 0 : 10;
}
