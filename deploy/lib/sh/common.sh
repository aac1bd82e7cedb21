# deploy/lib/sh/common.sh — the helpers the project's bash scripts share.
#
# Sourced, never run: `. "$repo/deploy/lib/sh/common.sh"`. Needs bash 5
# (EPOCHREALTIME); defines functions and the pids array, changes no shell
# option. Helpers that return a value set REPLY instead of printing it, so
# hot loops do not fork.
#
# Output: say writes one line to stdout, warn the same to stderr, die the
# same to stderr and exits 1. A script shapes its lines with
#   SAY_PREFIX   put before every line (none until the script sets it)
#   DIE_PREFIX   put before the message of a die line, after SAY_PREFIX
#   say_stamp    a function the script may define: sets REPLY to text put
#                before every line (after SAY_PREFIX), e.g. elapsed time.

SAY_PREFIX=
DIE_PREFIX=

say() {
    local stamp=
    if declare -F say_stamp >/dev/null; then say_stamp && stamp=$REPLY; fi
    printf '%s%s%s\n' "$SAY_PREFIX" "$stamp" "$*"
}

warn() { say "$*" >&2; }

die() {
    say "$DIE_PREFIX$*" >&2
    exit 1
}

# ------------------------------------------------------------------- time
# Sets REPLY to the wall clock in milliseconds (no fork).
now_ms() {
    local t=${EPOCHREALTIME//[!0-9]/}
    REPLY=$((10#$t / 1000))
}

# Prints MS milliseconds as seconds with one decimal: "12.3".
secs() { printf '%d.%d' $(($1 / 1000)) $((($1 % 1000) / 100)); }

# Prints "N.N s" since T0 (a now_ms value).
since() {
    now_ms
    secs $((REPLY - $1))
    printf ' s'
}

# -------------------------------------------------------------- processes
# True when something accepts TCP connections on HOST (default 127.0.0.1):PORT.
port_open() {
    (exec 3<>"/dev/tcp/${2:-127.0.0.1}/$1") 2>/dev/null
}

# True when PID exists and is not a zombie (no fork).
pid_alive() {
    local pid=$1 stat state
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    { read -r stat </proc/"$pid"/stat; } 2>/dev/null || return 1
    state=${stat##*) }
    state=${state%% *}
    [[ $state != Z && $state != X ]]
}

# stop_pid PID [SIGNAL] [GRACE_S]: SIGNAL (default TERM), wait up to GRACE_S
# seconds (default 30) for PID to end, then SIGKILL; reaps it when it is a
# child of this shell. Returns its exit status as `wait` reports it (127
# for a pid that is not our child). Quiet: bash's "Killed" notices go to
# /dev/null.
stop_pid() {
    {
        local pid=$1 sig=${2:-TERM} grace=${3:-30} i
        if pid_alive "$pid"; then
            kill -"$sig" "$pid" || true
            for ((i = 0; i < grace * 10; i++)); do
                pid_alive "$pid" || break
                sleep 0.1
            done
            pid_alive "$pid" && kill -KILL "$pid"
        fi
        wait "$pid"
    } 2>/dev/null
}

# Processes a script started and stops at exit: `track PID` after starting
# one, `stop_tracked PID [SIGNAL] [GRACE_S]` (stop_pid, then forget it, so
# a recycled pid is never signalled); cleanup walks "${pids[@]}".
pids=()
track() { pids+=("$1"); }
untrack() {
    local others=() p
    for p in "${pids[@]}"; do [[ $p == "$1" ]] || others+=("$p"); done
    pids=("${others[@]}")
}
stop_tracked() {
    local rc=0
    stop_pid "$@" || rc=$?
    untrack "$1"
    return $rc
}

# ---------------------------------------------------------------- locking
# lock_file FD FILE SECONDS [WHY]: opens FILE on descriptor FD and takes an
# exclusive flock on it, waiting up to SECONDS; dies on timeout ("timed out
# waiting for FILE (WHY)"). The lock lasts until FD is closed (`exec FD>&-`)
# or the shell exits; processes started meanwhile must not inherit FD
# (start them with FD>&-) or they hold the lock.
lock_file() {
    local fd=$1 file=$2
    eval "exec $fd>\"\$file\""
    flock -w "$3" "$fd" || die "timed out waiting for $file${4:+ ($4)}"
}
