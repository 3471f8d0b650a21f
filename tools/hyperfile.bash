# bash completion for hyperfile(1), the hyperfile admin command.
# Installed as bash-completion/completions/hyperfile by `make install`.
#
# The words come from the command itself, so they cannot drift from it:
# the commands and store options from `hyperfile --help`, each command's
# own options from the usage line of `hyperfile help COMMAND`, and which
# options take an argument from the same lines (an option followed by
# "=" or by a placeholder in capitals: "--size SIZE", "--retain=DUR";
# "--sse AES256|aws:kms" also lists its values).  All are read once per
# shell and kept.  URLs complete as local paths (s3:// URLs are typed by
# hand), POINTs and sizes not at all.

# _hyperfile_scan_usage LINE: note every option of a usage line (after
# a space, "[", "|" or "(") and whether it takes an argument.
_hyperfile_scan_usage ()
{
  local rest=$1 re='(^|[ [|(])(--[a-z][a-z-]*)([ =]?)([^] )]*)' m
  while [[ "$rest" =~ $re ]]; do
    # Keep the match: _hyperfile_note's own =~ replaces BASH_REMATCH
    # (and empties it when it fails, which left rest as it was: a loop
    # without end on "--opt lowercase-word").
    m=${BASH_REMATCH[0]}
    _hyperfile_note "${BASH_REMATCH[2]}" "${BASH_REMATCH[3]}" \
                    "${BASH_REMATCH[4]}"
    rest=${rest#*"$m"}
  done
}

# _hyperfile_note OPT SEP WORD: OPT takes an argument if SEP is "=" or
# WORD is a placeholder (capitals first); WORD with "|" lists values.
_hyperfile_note ()
{
  case " $_hyperfile_all " in *" $1 "*) ;; *) _hyperfile_all+=" $1" ;; esac
  if [ "$2" = "=" ] || { [ -n "$2" ] && [[ "$3" =~ ^[A-Z+] ]]; }; then
    case " $_hyperfile_argopts " in
      *" $1 "*) ;;
      *) _hyperfile_argopts+=" $1" ;;
    esac
    [[ "$3" == *"|"* ]] && eval "_hyperfile_vals_${1//-/_}=\"${3//|/ }\""
  fi
  return 0
}

# _hyperfile_words PROG: fill the lists once.
_hyperfile_words ()
{
  [ -n "${_hyperfile_cmds-}" ] && return 0
  local help line section= c
  help=$("$1" --help 2>/dev/null) || return 1
  _hyperfile_cmds= _hyperfile_opts= _hyperfile_all= _hyperfile_argopts=
  while IFS= read -r line; do
    case "$line" in
      Commands:*) section=cmds; continue ;;
      "Store options"*) section=opts; continue ;;
      "") section=; continue ;;
    esac
    if [ "$section" = cmds ] && [[ "$line" =~ ^\ \ ([a-z]+)\  ]]; then
      case " $_hyperfile_cmds " in
        *" ${BASH_REMATCH[1]} "*) ;;
        *) _hyperfile_cmds+=" ${BASH_REMATCH[1]}" ;;
      esac
    elif [ "$section" = opts ] &&
         [[ "$line" =~ ^\ +(-[a-zA-Z],\ )?(--[a-z][a-z-]*)([ =]?)([^ ]*) ]]
    then
      _hyperfile_opts+=" ${BASH_REMATCH[2]}"
      _hyperfile_note "${BASH_REMATCH[2]}" "${BASH_REMATCH[3]}" \
                      "${BASH_REMATCH[4]}"
    fi
  done <<< "$help"
  for c in $_hyperfile_cmds; do
    _hyperfile_scan_usage "$("$1" help "$c" 2>/dev/null | head -n 1)"
  done
}

# _hyperfile_cmd_opts PROG CMD: the options in CMD's usage line.
_hyperfile_cmd_opts ()
{
  "$1" help "$2" 2>/dev/null | head -n 1 |
    grep -oE -- '(^|[ [|(])--[a-z][a-z-]*' | tr -d ' [|('
}

_hyperfile ()
{
  local cur prev prog cmd= sub= i w vals
  cur=${COMP_WORDS[COMP_CWORD]}
  prev=${COMP_WORDS[COMP_CWORD-1]}
  prog=${COMP_WORDS[0]}
  COMPREPLY=()
  _hyperfile_words "$prog" || return 0

  # The argument of an option.
  case " $_hyperfile_argopts " in
    *" $prev "*)
      case "$prev" in
        --secret-key|--session-token|--ca-file)
          COMPREPLY=($(compgen -f -- "$cur")) ;;
        --tls-verify)
          COMPREPLY=($(compgen -W "true false" -- "$cur")) ;;
        *)
          w=_hyperfile_vals_${prev//-/_}
          vals=${!w-}
          [ -n "$vals" ] && COMPREPLY=($(compgen -W "$vals" -- "$cur")) ;;
      esac
      return 0 ;;
  esac

  # The command word (and snapshot's subcommand), skipping options and
  # the arguments of those that take one.
  for ((i = 1; i < COMP_CWORD; i++)); do
    w=${COMP_WORDS[i]}
    case "$w" in
      -*)
        case " $_hyperfile_argopts " in *" $w "*) ((i++)) ;; esac ;;
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
    "" | help) COMPREPLY=($(compgen -W "$_hyperfile_cmds" -- "$cur")) ;;
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
