# bash completion for vaurien(1)                           -*- shell-script -*-
#
# The flags, protocols and ctl commands come from the vaurien being
# completed (its --help texts and --list-protocols), so they are always
# the ones that binary takes; tests/e2e/test_install.py checks that every
# flag of every mode is offered. Installed as
# share/bash-completion/completions/vaurien.

# "FLAG ARG" lines (ARG empty for a switch) from a mode's help: the option
# lines of `vaurien --help` ("  --proxy HOST:PORT", "  -h, --help"), the
# bracketed usage of `vaurien server --help` ("[-host HOST]"), and the
# bracketed usage of `vaurien ctl --help` ("[--hosts FILE]") then every
# other flag it names.
_vaurien_flags()
{
    local cmd=$1 mode=$2
    case $mode in
    server | demo-backend | ctl)
        {
            "$cmd" "$mode" --help 2>/dev/null |
                grep -oE '\[--?[a-z][a-z0-9-]*( [A-Za-z][A-Za-z:|]*)?\]' |
                tr -d '[]'
            [[ $mode == demo-backend ]] && echo --help
            [[ $mode == ctl ]] && { "$cmd" ctl --help 2>/dev/null |
                grep -oE '(^|[[:space:][|])--?[a-z][a-z0-9-]*' |
                grep -oE -- '-.*'; echo --help; } | sort -u
        } | awk '!seen[$1]++'
        ;;
    *)
        "$cmd" --help 2>/dev/null | awk '/^  -/ {
            for (i = 1; i <= NF && $i ~ /^-/; i++) {
                f = $i
                sub(/,$/, "", f)
                if (f !~ /[A-Z]/)
                    flags[++n] = f
            }
            arg = $i ~ /^[A-Z][A-Z0-9:=_|-]*([.][a-z]+)?$/ ? $i : ""
            for (j = 1; j <= n; j++)
                print flags[j], arg
            n = 0
        }'
        ;;
    esac
}

_vaurien()
{
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
    local cmd=${COMP_WORDS[0]} mode= line flag arg i
    local -a words=() takes=(-h)

    case ${COMP_WORDS[1]-} in
    server | ctl | demo | demo-backend)
        [[ $COMP_CWORD -gt 1 ]] && mode=${COMP_WORDS[1]} ;;
    esac
    COMPREPLY=()

    # the value of the flag before, when it takes one
    while read -r flag arg; do
        [[ -n $arg ]] && takes+=("$flag")
        [[ $flag == "$prev" && -n $arg ]] || continue
        case $flag:$arg in
        *protocol:*)
            words=($("$cmd" --list-protocols 2>/dev/null |
                awk -F: '/^[a-z]/ { print $1 }')) ;;
        *log-level:*)
            words=(debug info warning error critical) ;;
        *log-format:FORMAT)
            words=(text json) ;;
        *overflow:POLICY)
            words=(close backlog) ;;
        *:*FILE*)
            COMPREPLY=($(compgen -f -- "$cur"))
            return ;;
        *:*'|'*)
            words=(${arg//|/ }) ;;
        esac
        COMPREPLY=($(compgen -W "${words[*]}" -- "$cur"))
        return
    done < <(_vaurien_flags "$cmd" "$mode")

    if [[ $cur == -* || $mode == server || $mode == demo-backend ]]; then
        COMPREPLY=($(compgen -W "$(_vaurien_flags "$cmd" "$mode" |
            cut -d' ' -f1)" -- "$cur"))
    elif [[ -z $mode && $COMP_CWORD -eq 1 ]]; then
        COMPREPLY=($(compgen -W "server ctl demo demo-backend" -- "$cur"))
    elif [[ $mode == ctl ]]; then
        # the command, then toxic's own; the values of ctl's own flags
        # (--hosts FILE) come before the command
        for ((i = 2; i < COMP_CWORD; i++)); do
            [[ ${COMP_WORDS[i]} == -* ]] && continue
            [[ " ${takes[*]} " == *" ${COMP_WORDS[i - 1]} "* ]] && continue
            words+=("${COMP_WORDS[i]}")
        done
        if [[ ${#words[@]} -eq 0 ]]; then
            COMPREPLY=($(compgen -W "$("$cmd" ctl --help 2>/dev/null |
                awk '/^  [a-z]/ { print $1
                    for (i = 2; i < NF; i++) if ($i == "|") print $(i + 1) }')" \
                -- "$cur"))
        elif [[ ${words[0]} == toxic && ${#words[@]} -eq 1 ]]; then
            COMPREPLY=($(compgen -W "add update remove" -- "$cur"))
        fi
    fi
}
complete -F _vaurien vaurien
