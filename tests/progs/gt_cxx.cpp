// Ground truth for tests/e2e/3002-cxx-demangle.sh: a member function in a
// namespace allocates through new/new[] and leaks one object.
//
//   app::Parser::parse(int n), n = 100:
//     new Token x n (40 bytes each), each deleted
//     new int[25] (100 bytes), deleted
//     new Node (64 bytes), never deleted (leaked)
//   => allocations: n + 2 calls, 40 n + 164 bytes; leaked: 1 block, 64 bytes
//
// Prints nothing; exits 0.
#include <cstddef>

namespace app {

struct Token {
	char text[40];
};

struct Node {
	char payload[56];
	Node *next;
};

static_assert(sizeof(Token) == 40, "Token is 40 bytes");
static_assert(sizeof(Node) == 64, "Node is 64 bytes");

class Parser {
public:
	__attribute__((noinline)) void parse(int n);
	Node *kept = nullptr;
	Token *volatile last = nullptr;
};

void Parser::parse(int n)
{
	for (int i = 0; i < n; i++) {
		Token *t = new Token();
		last = t;
		delete t;
	}
	int *arr = new int[25];
	arr[0] = n;
	delete[] arr;
	kept = new Node();
}

} // namespace app

static app::Parser parser;

int main()
{
	parser.parse(100);
	return parser.kept ? 0 : 1;
}
