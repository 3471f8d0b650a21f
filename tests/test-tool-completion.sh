#!/usr/bin/env bash
# The bash completion (tools/hyperfile.bash): commands, snapshot's
# subcommands, global and per-command options (taken from the command's
# own --help, so every command and option it lists completes), words for
# --tls-verify, paths for URLs; `make install` puts it where
# bash-completion looks (share/bash-completion/completions/hyperfile).
set -e
. "$abs_srcdir/nbd-functions.sh"
hf_tmpdir

fail ()
{
  echo "$0: FAIL: $*" >&2
  exit 1
}
# shellcheck source=/dev/null
. "$abs_top_srcdir/tools/hyperfile.bash"
complete -p hyperfile | grep -q _hyperfile || fail "not registered"
# comp WORD...: what completing the last word offers.
comp ()
{
  COMP_WORDS=("$HYPERFILE" "$@")
  COMP_CWORD=$#
  _hyperfile
  echo "${COMPREPLY[*]}"
}
expect ()
{
  local want="$1" got
  shift
  got=$(comp "$@")
  [ "$got" = "$want" ] || fail "completing '$*': '$got', want '$want'"
}

expect resize res
expect "create clone children" c
expect "create list delete" snapshot ""
expect --retain gc --ret
expect --dry-run --endpoint http://127.0.0.1:9 gc --dr
expect "--force --from" export "$tmp" out --f
expect "--profile --prune" children x --pr
expect "--tls-verify --takeover" flatten x --t
expect --endpoint --end
expect false --tls-verify f
expect flatten help fl
mkdir "$tmp/vol1"
expect "$tmp/vol1" info "$tmp/vo"
expect "" resize "$tmp/vol1" --size

# A usage word in lower case after an option, with brackets of its own
# (the scan once looped for ever on it; timeout ends that as a failure).
# shellcheck disable=SC2016
timeout 10 bash -c '. "$1"; _hyperfile_scan_usage "$2";
                    echo "$_hyperfile_all|$_hyperfile_argopts"' _ \
  "$abs_top_srcdir/tools/hyperfile.bash" \
  'usage: hyperfile x [--codec zstd[:LEVEL]|off] [--at POINT] URL' \
  > "$tmp/scan" || fail "scanning a usage line: exit $?"
[ "$(cat "$tmp/scan")" = " --codec --at| --at" ] ||
  fail "scanning a usage line: $(cat "$tmp/scan")"

# Every command and every option that --help and help COMMAND list.
cmds=$("$HYPERFILE" --help | sed -n '/^Commands:/,/^$/s/^  \([a-z]*\) .*/\1/p' |
  sort -u)
[ "$(echo "$cmds" | wc -l)" -ge 17 ] || fail "commands: $cmds"
for c in $cmds; do
  comp "$c" > /dev/null
  case " $(comp "${c:0:${#c}}") " in *" $c "*) ;; *) fail "command $c" ;; esac
  for o in $("$HYPERFILE" help "$c" | head -n 1 |
             grep -oE -- '(^|[ [|(])--[a-z][a-z-]*' | tr -d ' [|('); do
    case " $(comp "$c" x "$o") " in
      *" $o "*) ;;
      *) fail "option $o of $c" ;;
    esac
  done
done
# (An option is what starts a line there: "  -v, --verbose", "  --sse
# ..."; a word inside a description such as NAME--ZONE--x-s3 is not.)
opts=$("$HYPERFILE" --help | sed -n '/^Store options/,$p' |
  sed -nE 's/^ +(-[a-zA-Z], )?(--[a-z][a-z-]*).*/\2/p' | sort -u)
[ "$(echo "$opts" | wc -l)" -ge 15 ] || fail "store options: $opts"
for o in $opts; do
  case " $(comp "$o") " in *" $o "*) ;; *) fail "option $o" ;; esac
done
# An option's argument is skipped when looking for the command word:
# "OPTION VALUE res" completes the command resize exactly when OPTION
# takes an argument, as the help says ("--size SIZE", "--retain=DUR").
argopts=$( { "$HYPERFILE" --help | sed -n '/^Store options/,$p'
             for c in $cmds; do "$HYPERFILE" help "$c" | head -n 1; done; } |
  grep -oE -- '--[a-z][a-z-]*(=| [A-Z+])' | sed 's/[= ].*//' | sort -u)
for o in --size --retain --from --secret-key --tls-verify; do
  echo "$argopts" | grep -qx -- "$o" || fail "$o not seen to take an argument"
done
for o in $argopts; do
  expect resize "$o" value res
done
expect resize --json res
expect "aws:kms" --sse aws
expect "" --size 1

# Installed where bash-completion finds it.
make -s -C "$abs_top_builddir/tools" install-data DESTDIR="$tmp/inst" \
  > /dev/null
f=$(find "$tmp/inst" -path '*/share/bash-completion/completions/hyperfile')
[ -n "$f" ] && cmp "$f" "$abs_top_srcdir/tools/hyperfile.bash" ||
  fail "not installed"
echo "$0: ok"
