# Text processing in perl: generate lines, split, regex, hash counting, sort.
# perl text.pl LINES (default 100000). Deterministic output.
use strict;
use warnings;
my $n = shift // 100000;
my @w = qw(alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau);
my (%count, %bigram, @lines);
my $x = 12345;
for my $i (1 .. $n) {
    my @l;
    for (1 .. 8 + $i % 5) { $x = ($x * 1103515245 + 12345) % 2147483648; push @l, $w[$x % @w] . ($x % 13); }
    push @lines, join(' ', @l);
}
for my $line (@lines) {
    my @t = split / /, $line;
    for my $j (0 .. $#t) {
        (my $base = $t[$j]) =~ s/\d+$//;
        $count{$base}++;
        $bigram{"$t[$j-1] $t[$j]"}++ if $j;
    }
    $line =~ s/(\w+?)(\d+)/$2$1/g;
}
my @top = (sort { $count{$b} <=> $count{$a} || $a cmp $b } keys %count)[0 .. 4];
my @bt = (sort { $bigram{$b} <=> $bigram{$a} || $a cmp $b } keys %bigram)[0 .. 2];
my $len = 0; $len += length for @lines;
print "lines $n, words ", scalar(keys %count), ", bigrams ", scalar(keys %bigram), ", length $len\n";
print "top @top\n", join("\n", map { "$_: $bigram{$_}" } @bt), "\n";
