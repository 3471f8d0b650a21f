# bash completion for hyperfile(1), the hyperfile admin command.
# Installed as bash-completion/completions/hyperfile by `make install`.
#
# The words come from the command itself, so they cannot drift from it:
# the commands and store options from `hyperfile --help`, each command's
# own options from the usage line of `hyperfile help COMMAND` (both read
# once per shell and kept).  URLs complete as local paths (s3:// URLs are
# typed by hand), POINTs not at all.

# _hyperfile_words: fill _hyperfile_cmds and _hyperfile_opts once.
_hyperfile_words ()
{
  [ -n "${_hyperfile_cmds-}" ] && return 0
  local help line section=
  help=$("${1:-hyperfile}" --help 2>/dev/null) || return 1
  _hyperfile_cmds=
  _hyperfile_opts=
  while IFS= read -r line; do
    case "$line" in
      Commands:*) section=cmds; continue ;;
      "Store options"*) section=opts; continue ;;
      "") section= ; continue ;;
    esac
    if [ "$section" = cmds ] && [[ "$line" =~ ^\ \ ([a-z]+)\  ]]; then
      case " $_hyperfile_cmds " in
        *" ${BASH_REMATCH[1]} "*) ;;
        *) _hyperfile_cmds+=" ${BASH_REMATCH[1]}" ;;
      esac
    elif [ "$section" = opts ] && [[ "$line" =~ (--[a-z-]+) ]]; then
      _hyperfile_opts+=" ${BASH_REMATCH[1]}"
    fi
  done <<< "$help"
}

# _hyperfile_cmd_opts PROG CMD: the options in CMD's usage line.
_hyperfile_cmd_opts ()
{
  "$1" help "$2" 2>/dev/null | head -n 1 | grep -o -- '--[a-z-]*'
}

_hyperfile ()
{
  local cur prev prog cmd= sub= i w
  cur=${COMP_WORDS[COMP_CWORD]}
  prev=${COMP_WORDS[COMP_CWORD-1]}
  prog=${COMP_WORDS[0]}
  COMPREPLY=()
  _hyperfile_words "$prog" || return 0

  # Options whose argument is not a path or a word list.
  case "$prev" in
    --endpoint|--region|--access-key|--profile|--size|--block-size| \
    --retain|--grace|--at|--from|--to|--request-timeout|--request-retries)
      return 0 ;;
    --secret-key|--session-token|--ca-file)
      COMPREPLY=($(compgen -f -- "$cur")); return 0 ;;
    --tls-verify)
      COMPREPLY=($(compgen -W "true false" -- "$cur")); return 0 ;;
  esac

  # The command word (and snapshot's subcommand), skipping options and
  # the arguments of those that take one.
  for ((i = 1; i < COMP_CWORD; i++)); do
    w=${COMP_WORDS[i]}
    case "$w" in
      --endpoint|--region|--access-key|--secret-key|--session-token| \
      --profile|--tls-verify|--ca-file|--size|--block-size|--retain| \
      --grace|--at|--from|--to|--request-timeout|--request-retries)
        ((i++)) ;;
      -*) ;;
      *)
        if [ -z "$cmd" ]; then cmd=$w
        elif [ "$cmd" = snapshot ] && [ -z "$sub" ]; then sub=$w
        fi ;;
    esac
  done

  if [[ "$cur" == -* ]]; then
    local opts=$_hyperfile_opts
    [ -n "$cmd" ] && opts+=" $(_hyperfile_cmd_opts "$prog" "$cmd")"
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    return 0
  fi
  case "$cmd" in
    "") COMPREPLY=($(compgen -W "$_hyperfile_cmds" -- "$cur")) ;;
    help) COMPREPLY=($(compgen -W "$_hyperfile_cmds" -- "$cur")) ;;
    snapshot)
      if [ -z "$sub" ]; then
        COMPREPLY=($(compgen -W "create list delete" -- "$cur"))
      else
        COMPREPLY=($(compgen -f -- "$cur"))
      fi ;;
    *) COMPREPLY=($(compgen -f -- "$cur")) ;;
  esac
  return 0
}
complete -o filenames -o bashdefault -F _hyperfile hyperfile
