# bash completion for speedcli. Installed to share/bash-completion/completions/speedcli.
# The option lists match `speedcli --help` and `speedcli monitor --help` (an integration test checks it).

_speedcli() {
    local cur prev words cword
    _init_completion || return

    local test_options="-p --port -t --duration --time -O --omit -i --interval -P --streams --parallel
        -b --bitrate --iperf3 -u --udp -l --length -C --congestion --no-download --no-upload --bidir --pings
        --loaded-ping-interval --ping-interval --connect-timeout --servers -B --bind --cport -w --window -M --set-mss
        -S --tos --dscp --threads -4 --ipv4 -6 --ipv6 -J --json
        --json-stream --csv -q --quiet -f --format --logfile --report --auth-key --auth-key-name -h --help -v --version"
    local monitor_options="-I --interface -i --interval -c --count -J --json --units --once --report -h --help"

    local i in_monitor=0
    for ((i = 1; i < cword; i++)); do
        if [[ ${words[i]} == monitor ]]; then
            in_monitor=1
            break
        fi
    done

    case $prev in
        --auth-key | --logfile | --report | --servers)
            _filedir
            return
            ;;
        -f | --format)
            COMPREPLY=($(compgen -W "a k m g t K M G T" -- "$cur"))
            return
            ;;
        -C | --congestion)
            local available=/proc/sys/net/ipv4/tcp_available_congestion_control
            [[ -r $available ]] && COMPREPLY=($(compgen -W "$(<"$available")" -- "$cur"))
            return
            ;;
        -I | --interface)
            COMPREPLY=($(compgen -W "$(command ls /sys/class/net 2>/dev/null)" -- "$cur"))
            return
            ;;
        --units)
            COMPREPLY=($(compgen -W "bits bytes" -- "$cur"))
            return
            ;;
        --dscp)
            COMPREPLY=($(compgen -W "EF VA LE CS0 CS1 CS2 CS3 CS4 CS5 CS6 CS7 AF11 AF12 AF13 AF21 AF22 AF23 AF31 AF32 AF33 AF41 AF42 AF43" -- "$cur"))
            return
            ;;
        -p | --port | -t | --duration | --time | -O | --omit | -i | --interval | -P | --streams | --parallel | \
            -b | --bitrate | -l | --length | --pings | --loaded-ping-interval | --ping-interval | \
            --connect-timeout | --threads | --auth-key-name | -c | --count | -B | --bind | --cport | -w | \
            --window | -M | --set-mss | -S | --tos)
            return # a number or a name: nothing to offer
            ;;
    esac

    if ((in_monitor)); then
        COMPREPLY=($(compgen -W "$monitor_options" -- "$cur"))
    elif [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$test_options" -- "$cur"))
    else
        _known_hosts_real -- "$cur"
        COMPREPLY+=($(compgen -W "monitor" -- "$cur"))
    fi
}
complete -F _speedcli speedcli
