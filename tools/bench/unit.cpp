// A small C++ unit for the cc1plus workload (preprocessed once by run.sh).
#include <algorithm>
#include <map>
#include <string>
#include <vector>

namespace bench {
template <typename K, typename V> struct Table {
	std::map<K, std::vector<V>> rows;
	void add(const K &k, const V &v) { rows[k].push_back(v); }
	std::size_t size() const
	{
		std::size_t n = 0;
		for (const auto &r : rows)
			n += r.second.size();
		return n;
	}
};

std::string join(const std::vector<std::string> &v, const std::string &sep)
{
	std::string out;
	for (std::size_t i = 0; i < v.size(); i++) {
		if (i)
			out += sep;
		out += v[i];
	}
	return out;
}

std::size_t run(int n)
{
	Table<std::string, int> t;
	Table<int, std::string> u;
	std::vector<std::string> names;
	for (int i = 0; i < n; i++) {
		names.push_back("n" + std::to_string(i % 97));
		t.add(names.back(), i);
		u.add(i % 13, names.back());
	}
	std::sort(names.begin(), names.end());
	names.erase(std::unique(names.begin(), names.end()), names.end());
	return t.size() + u.size() + join(names, ",").size();
}
} // namespace bench

int main() { return (int)(bench::run(1000) % 7); }
