/* Build a balanced binary tree of N nodes (argv[1], default 3000000), one
 * 96-byte malloc per node, walk it, then free it except every 1000th node
 * (by in-order key), which leaks. Peak heap (requested) = N * 96 bytes plus the
 * stdout buffer; leaks = N/1000 (rounded as printed) blocks of 96 bytes. */
#include <stdio.h>
#include <stdlib.h>

struct node {
	struct node *left, *right;
	long key;
	char payload[72];
};

static long next_key;

__attribute__((noinline)) static struct node *build(long n)
{
	if (n <= 0)
		return NULL;
	long nl = (n - 1) / 2;
	struct node *left = build(nl);
	struct node *t = malloc(sizeof *t);
	if (!t)
		abort();
	t->key = next_key++;
	t->payload[0] = (char)t->key;
	t->left = left;
	t->right = build(n - 1 - nl);
	return t;
}

__attribute__((noinline)) static long sum(const struct node *t)
{
	return t ? t->key + t->payload[0] * 0 + sum(t->left) + sum(t->right) : 0;
}

__attribute__((noinline)) static long release(struct node *t)
{
	if (!t)
		return 0;
	long leaked = release(t->left) + release(t->right);
	if (t->key % 1000 == 999)
		return leaked + 1; /* leak */
	free(t);
	return leaked;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 3000000L;
	struct node *root = build(n);
	long s = sum(root);
	long leaked = release(root);
	printf("tree: %ld nodes of %zu bytes, peak %ld bytes, key sum %ld, leaked %ld blocks (%ld bytes)\n",
	       n, sizeof(struct node), n * (long)sizeof(struct node), s, leaked,
	       leaked * (long)sizeof(struct node));
	return 0;
}
