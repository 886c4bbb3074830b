# bash completion for speedsrv. Installed to share/bash-completion/completions/speedsrv.
# The option list matches `speedsrv --help` (an integration test checks it).

_speedsrv() {
    local cur prev words cword
    _init_completion || return

    case $prev in
        --auth-keys)
            _filedir
            return
            ;;
        --log-level)
            COMPREPLY=($(compgen -W "trace debug info warn error critical off" -- "$cur"))
            return
            ;;
        -B | --bind)
            _ip_addresses
            return
            ;;
        --metrics)
            # ADDR:PORT: nothing sensible to offer but the usual loopback choice.
            COMPREPLY=($(compgen -W "127.0.0.1:9464 [::1]:9464" -- "$cur"))
            return
            ;;
        -p | --port | -t | --threads | --max-sessions | --max-sessions-per-host | --max-handshakes | \
            --max-handshakes-per-host | --ipv4-host-prefix | --ipv6-host-prefix | --handshake-timeout | \
            --idle-timeout | --stall-timeout | --max-streams | --max-duration | --max-bitrate | --max-bytes | \
            --max-tests-per-session | --max-session-time | --min-bitrate | --max-sessions-per-ipv4-24 | \
            --max-sessions-per-ipv6-56 | --max-sessions-per-ipv6-48 | --max-handshakes-per-network | \
            --reserved-handshakes | --http-port | --http-request-timeout | --http-max-connections | \
            --http-max-connections-per-host | --http-cors)
            return
            ;;
    esac

    COMPREPLY=($(compgen -W "-B --bind -p --port -t --threads --log-level --max-sessions --max-sessions-per-host
        --max-handshakes --max-handshakes-per-host --ipv4-host-prefix --ipv6-host-prefix --handshake-timeout
        --idle-timeout --stall-timeout --max-streams --max-duration --max-bitrate --max-bytes --no-udp
        --no-iperf3 --max-tests-per-session --auth-keys --max-session-time --min-bitrate --max-sessions-per-ipv4-24
        --max-sessions-per-ipv6-56 --max-sessions-per-ipv6-48 --max-handshakes-per-network
        --reserved-handshakes --metrics --http-port --http-request-timeout --http-max-connections
        --http-max-connections-per-host --http-cors --allow-root -h --help -v --version" -- "$cur"))
}
complete -F _speedsrv speedsrv
