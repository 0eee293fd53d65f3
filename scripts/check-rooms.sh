#!/usr/bin/env bash
# Checks that the rooms of node/src (its top-level modules: a folder with a
# mod.rs, or a single file) depend on each other one way only.
#
#   scripts/check-rooms.sh [SRC]     check SRC (default: <repo>/node/src)
#   scripts/check-rooms.sh --self-test
#
# Every room has a place in ROOMS, lowest first. A room may use only rooms
# listed before it: every `crate::name` path in its files (outside
# comments), including each name of a `use crate::{a, b::c}` group, must
# name a lower room. A `crate::` path to something that is not a room is an
# item of the crate root, main.rs, which counts as the room `main`. Fails
# (exit 1) naming both rooms when two rooms use each other, and naming the
# file and line of every use that goes against the order; also when a
# module of SRC is missing from ROOMS.
#
# --self-test runs the check on copies of node/src: unchanged (must pass),
# then with an upward `use`, with two rooms using each other, with such a
# use hidden in a `use crate::{}` group spread over lines, with a call into
# main.rs, and with an undeclared room (each must fail, with the expected
# message), and with upward uses in comments only (must pass).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Lowest first. Keep in step with ARCHITECTURE.md ("Rooms of node/").
ROOMS=(alloc log config shared io mesh bus persist replica tools shard commands core main)

# check SRC: prints the violations; returns 1 if any.
check() {
    local src="$1"
    ROOM_ORDER="${ROOMS[*]}" perl -e '
        use strict;
        use warnings;
        my $src = shift @ARGV;
        my @order = split / /, $ENV{ROOM_ORDER};
        my %rank;
        @rank{@order} = (0 .. $#order);
        opendir(my $dh, $src) or die "check-rooms: cannot read $src: $!\n";
        my @entries = sort grep { !/^\./ } readdir $dh;
        closedir $dh;
        my (%room_files, @bad);
        for my $e (@entries) {
            my $room;
            if (-d "$src/$e") {
                next unless -f "$src/$e/mod.rs";
                $room = $e;
                my @stack = ("$src/$e");
                while (my $d = pop @stack) {
                    opendir(my $h, $d) or die "check-rooms: cannot read $d: $!\n";
                    for my $f (sort grep { !/^\./ } readdir $h) {
                        if (-d "$d/$f") { push @stack, "$d/$f" }
                        elsif ($f =~ /\.rs$/) { push @{ $room_files{$room} }, "$d/$f" }
                    }
                    closedir $h;
                }
            } elsif ($e =~ /^(\w+)\.rs$/) {
                $room = $1;
                push @{ $room_files{$room} }, "$src/$e";
            } else {
                next;
            }
            push @bad, "room \"$room\" ($src/$e) has no place in ROOMS of scripts/check-rooms.sh"
                unless exists $rank{$room};
        }
        # uses{A}{B}: the first place where room A names room B.
        my %uses;
        for my $room (sort keys %room_files) {
            for my $file (@{ $room_files{$room} }) {
                open(my $fh, "<", $file) or die "check-rooms: cannot read $file: $!\n";
                local $/;
                my $text = <$fh>;
                close $fh;
                # Comments out (line comments, doc comments included),
                # keeping the line breaks so line numbers stay right.
                $text =~ s{//[^\n]*}{}g;
                $text =~ s{/\*.*?\*/}{ (my $c = $&) =~ s/[^\n]//g; $c }gse;
                my @found;
                while ($text =~ /\bcrate\s*::\s*(\{|\w+)/g) {
                    my ($what, $at) = ($1, $-[0]);
                    if ($what ne "{") {
                        push @found, [$what, $at];
                        next;
                    }
                    # A group: the first name of each top-level item.
                    my ($depth, $i, $item) = (1, pos($text), "");
                    while ($depth > 0 && $i < length $text) {
                        my $ch = substr($text, $i++, 1);
                        if ($ch eq "{") { $depth++ }
                        elsif ($ch eq "}") { $depth-- }
                        if ($depth == 0 || ($depth == 1 && $ch eq ",")) {
                            push @found, [$1, $at] if $item =~ /^\s*(\w+)/;
                            $item = "";
                        } elsif ($depth == 1) {
                            $item .= $ch;
                        }
                    }
                }
                for my $f (@found) {
                    my ($name, $at) = @$f;
                    $name = "main" unless exists $room_files{$name};
                    next if $name eq $room;
                    my $line = 1 + (substr($text, 0, $at) =~ tr/\n//);
                    $uses{$room}{$name} //= "$file:$line";
                }
            }
        }
        my %said;
        for my $a (sort keys %uses) {
            for my $b (sort keys %{ $uses{$a} }) {
                if (exists $uses{$b} && exists $uses{$b}{$a}) {
                    my $pair = join " ", sort ($a, $b);
                    next if $said{$pair}++;
                    push @bad, "rooms \"$a\" and \"$b\" import each other ($uses{$a}{$b} and $uses{$b}{$a})";
                    next;
                }
                next unless exists $rank{$a} && exists $rank{$b};
                if ($rank{$b} >= $rank{$a}) {
                    push @bad, "room \"$a\" uses \"$b\", which is not below it in ROOMS ($uses{$a}{$b})";
                }
            }
        }
        if (@bad) {
            print STDERR "check-rooms: $_\n" for @bad;
            print STDERR "check-rooms: the order, lowest first: @order\n";
            exit 1;
        }
    ' "$src"
}

# expect_failure NAME PATTERN SRC: the check must fail on SRC and say PATTERN.
expect_failure() {
    local name="$1" pattern="$2" src="$3" out
    if out="$(check "$src" 2>&1)"; then
        echo "check-rooms self-test: \"$name\" was not caught" >&2
        return 1
    fi
    if ! grep -qF -- "$pattern" <<<"$out"; then
        echo "check-rooms self-test: \"$name\" failed without saying \"$pattern\":" >&2
        echo "$out" >&2
        return 1
    fi
    echo "ok: $name is caught: $(head -1 <<<"$out")"
}

self_test() {
    local real="$ROOT/node/src" tmp
    tmp="$(mktemp -d "${TMPDIR:-/tmp}/check-rooms.XXXXXX")"
    # shellcheck disable=SC2064
    trap "rm -rf '$tmp'" RETURN
    fresh() {
        rm -rf "$tmp/src"
        cp -r "$real" "$tmp/src"
    }
    fresh
    check "$tmp/src"
    echo "ok: node/src as it is passes"

    fresh
    printf '\nuse crate::mesh::Msg;\n' >>"$tmp/src/config/support.rs"
    expect_failure "an upward use" 'room "config" uses "mesh", which is not below it in ROOMS' "$tmp/src" || return 1

    fresh
    printf '\nuse crate::core::Core;\n' >>"$tmp/src/io/ring.rs"
    expect_failure "two rooms using each other" 'rooms "core" and "io" import each other' "$tmp/src" || return 1

    fresh
    printf '\nuse crate::{\n    log,\n    shard::{Origin, Shard},\n};\n' >>"$tmp/src/mesh/task.rs"
    expect_failure "a mutual use in a use group" 'rooms "mesh" and "shard" import each other' "$tmp/src" || return 1

    fresh
    printf '\nfn f() {\n    crate::settings_from();\n}\n' >>"$tmp/src/commands/node.rs"
    expect_failure "a call into main.rs" 'room "commands" uses "main", which is not below it' "$tmp/src" || return 1

    fresh
    printf '//! A room nobody placed.\n' >"$tmp/src/extra.rs"
    expect_failure "an undeclared room" 'room "extra"' "$tmp/src" || return 1

    fresh
    printf '\n// use crate::core::Core;\n/// [`crate::commands`]\n' >>"$tmp/src/io/ring.rs"
    check "$tmp/src"
    echo "ok: comments are not uses"
    echo "check-rooms self-test passed"
}

case "${1:-}" in
--self-test) self_test ;;
-h | --help) sed -n '2,20p' "$0" ;;
*)
    SRC="${1:-$ROOT/node/src}"
    check "$SRC"
    echo "check-rooms: node rooms depend one way (${ROOMS[*]}, lowest first)"
    ;;
esac
