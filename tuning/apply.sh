#!/usr/bin/env bash
# Applies tuning/ to this host so herd can hold 1M+ client connections: raises the kernel knobs
# of sysctl.d/90-herd.conf now, installs them for boot, and installs the nofile/memlock limits
# for logins (limits.d) and for a herd systemd service. Previous values go to a backup file
# that --revert restores. See tuning/README.md.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: tuning/apply.sh [--dry-run] [--revert]

  (no option)  apply as root: raise each knob (never lowering one), install the files and
               record the previous values in the backup file (kept from the first run)
  --dry-run    print what would change, change nothing (combines with --revert)
  --revert     restore the values and files recorded in the backup file

Every change is printed as "knob: old -> new".
Environment: HERD_STATE_DIR (backup, default /var/lib/herd-tuning), HERD_ETC (default /etc),
HERD_PROC_SYS (default /proc/sys).
EOF
}

HERE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
PROC_SYS=${HERD_PROC_SYS:-/proc/sys}
ETC=${HERD_ETC:-/etc}
STATE_DIR=${HERD_STATE_DIR:-/var/lib/herd-tuning}
BACKUP=$STATE_DIR/backup

SYSCTL_SRC=$HERE/sysctl.d/90-herd.conf
LIMITS_SRC=$HERE/limits.d/90-herd.conf
SYSTEMD_SRC=$HERE/systemd/herd.conf
SYSCTL_DST=$ETC/sysctl.d/90-herd.conf
LIMITS_DST=$ETC/security/limits.d/90-herd.conf
SYSTEMD_DST=$ETC/systemd/system/herd.service.d/90-herd.conf

# Knobs set to exactly their tuned value; every other knob is only ever raised (port range: widened).
EXACT_KNOBS=" net.ipv4.tcp_tw_reuse kernel.io_uring_disabled "
# A comment or blank line in a sysctl.d file.
SKIP_RE='^[[:space:]]*([#;]|$)'

dry_run=0
revert=0
for arg in "$@"; do
    case $arg in
        --dry-run) dry_run=1 ;;
        --revert) revert=1 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "apply.sh: unknown option: $arg" >&2; usage >&2; exit 2 ;;
    esac
done

failed=0
say() { printf '%s\n' "$*"; }
knob_path() { printf '%s/%s' "$PROC_SYS" "${1//.//}"; }

# Prints the knob's value with its fields separated by single spaces.
read_knob() {
    local -a words
    read -r -a words < "$(knob_path "$1")" || true
    printf '%s' "${words[*]}"
}

write_knob() {
    if ! printf '%s\n' "$2" 2>/dev/null > "$(knob_path "$1")"; then
        say "$1: could not write $2" >&2
        failed=1
    fi
}

# The larger / smaller of two non-negative integers of any length.
num_max() {
    if (( ${#1} != ${#2} )); then
        if (( ${#1} > ${#2} )); then say "$1"; else say "$2"; fi
    elif [[ $1 > $2 ]]; then say "$1"; else say "$2"; fi
}
num_min() {
    if [[ $(num_max "$1" "$2") == "$1" ]]; then say "$2"; else say "$1"; fi
}

# The value to set: the tuned one for exact knobs, else the field-wise maximum of old and tuned.
merge() {
    local knob=$1 i
    local -a old new out=()
    [[ $EXACT_KNOBS == *" $knob "* ]] && { say "$3"; return; }
    read -r -a old <<< "$2"
    read -r -a new <<< "$3"
    if (( ${#old[@]} != ${#new[@]} )); then say "$3"; return; fi
    if [[ $knob == net.ipv4.ip_local_port_range ]]; then
        say "$(num_min "${old[0]}" "${new[0]}") $(num_max "${old[1]}" "${new[1]}")"
        return
    fi
    for i in "${!new[@]}"; do out+=("$(num_max "${old[i]}" "${new[i]}")"); done
    say "${out[*]}"
}

# Prints "optional<TAB>knob<TAB>value" for each setting of a sysctl.d file.
conf_entries() {
    local line key value opt
    local -a words
    while IFS= read -r line || [[ -n $line ]]; do
        [[ $line =~ $SKIP_RE ]] && continue
        read -r -a words <<< "${line%%=*}"
        key=${words[*]}
        read -r -a words <<< "${line#*=}"
        value=${words[*]}
        opt=0
        if [[ $key == -* ]]; then opt=1; key=${key#-}; fi
        printf '%s\t%s\t%s\n' "$opt" "$key" "$value"
    done < "$1"
}

recorded() {
    [[ -f $BACKUP ]] && awk -F'\t' -v k="$1" -v n="$2" '$1 == k && $2 == n { f = 1 } END { exit !f }' "$BACKUP"
}

record() {
    recorded "$1" "$2" && return 0
    mkdir -p "$STATE_DIR"
    printf '%s\t%s\t%s\n' "$1" "$2" "$3" >> "$BACKUP"
}

declare -A MERGED=()

apply_sysctls() {
    local opt knob target old new
    while IFS=$'\t' read -r opt knob target; do
        if [[ ! -e $(knob_path "$knob") ]]; then
            say "$knob: not present on this kernel (skipped)"
            continue
        fi
        old=$(read_knob "$knob")
        new=$(merge "$knob" "$old" "$target")
        MERGED[$knob]=$new
        if [[ $old == "$new" ]]; then
            say "$knob: $old (unchanged)"
            continue
        fi
        say "$knob: $old -> $new"
        (( dry_run )) && continue
        record sysctl "$knob" "$old"
        write_knob "$knob" "$new"
    done < <(conf_entries "$SYSCTL_SRC")
}

# The sysctl.d file to install: tuning's file with each value raised to what was applied.
persisted_sysctl() {
    local line opt knob target
    while IFS= read -r line || [[ -n $line ]]; do
        if [[ ! $line =~ $SKIP_RE ]]; then
            IFS=$'\t' read -r opt knob target < <(conf_entries <(printf '%s\n' "$line"))
            if [[ -n ${MERGED[$knob]:-} ]]; then
                line="$knob = ${MERGED[$knob]}"
                if (( opt )); then line=-$line; fi
            fi
        fi
        say "$line"
    done < "$SYSCTL_SRC"
}

# Installs stdin as file $1, keeping a copy of what was there for --revert.
install_file() {
    local dst=$1 content saved
    content=$(cat)
    if [[ -f $dst && $(< "$dst") == "$content" ]]; then
        say "$dst: installed (unchanged)"
        return
    fi
    if [[ -e $dst ]]; then say "$dst: differs -> installed"; else say "$dst: absent -> installed"; fi
    (( dry_run )) && return
    if ! recorded file "$dst"; then
        if [[ -e $dst ]]; then
            mkdir -p "$STATE_DIR/files"
            saved=$STATE_DIR/files/${dst//\//_}
            cp -p -- "$dst" "$saved"
            record file "$dst" "$saved"
        else
            record file "$dst" -
        fi
    fi
    mkdir -p -- "$(dirname -- "$dst")"
    printf '%s\n' "$content" > "$dst"
}

apply_all() {
    local sysctl_conf nofile nr_open
    apply_sysctls
    sysctl_conf=$(persisted_sysctl)
    install_file "$SYSCTL_DST" <<< "$sysctl_conf"
    nofile=$(awk '!/^[[:space:]]*#/ && $3 == "nofile" && $4 > m { m = $4 } END { print m + 0 }' "$LIMITS_SRC")
    nr_open=${MERGED[fs.nr_open]:-$(read_knob fs.nr_open)}
    if [[ $(num_max "$nofile" "$nr_open") != "$nr_open" ]]; then
        say "nofile $nofile exceeds fs.nr_open $nr_open: not installing the limit files (logins would fail)" >&2
        failed=1
        return
    fi
    install_file "$LIMITS_DST" < "$LIMITS_SRC"
    install_file "$SYSTEMD_DST" < "$SYSTEMD_SRC"
    say "note: nofile and memlock apply to new logins (limits.d) and to herd.service after" \
        "'systemctl daemon-reload' and a restart; this shell has nofile $(ulimit -Sn)/$(ulimit -Hn)"
}

revert_all() {
    local kind name value cur
    if [[ ! -f $BACKUP ]]; then
        say "nothing to revert: no backup at $BACKUP"
        return
    fi
    while IFS=$'\t' read -r kind name value; do
        case $kind in
            sysctl)
                if [[ ! -e $(knob_path "$name") ]]; then say "$name: not present (skipped)"; continue; fi
                cur=$(read_knob "$name")
                if [[ $cur == "$value" ]]; then say "$name: $cur (unchanged)"; continue; fi
                say "$name: $cur -> $value"
                (( dry_run )) || write_knob "$name" "$value"
                ;;
            file)
                if [[ $value == - ]]; then
                    [[ -e $name ]] || continue
                    say "$name: installed -> removed"
                    (( dry_run )) || rm -f -- "$name"
                else
                    say "$name: installed -> restored"
                    (( dry_run )) || cp -p -- "$value" "$name"
                fi
                ;;
        esac
    done < "$BACKUP"
    (( dry_run )) && return
    if (( failed == 0 )); then
        rm -rf -- "$BACKUP" "$STATE_DIR/files"
        rmdir -- "$STATE_DIR" 2>/dev/null || true
    fi
    rmdir -- "$(dirname -- "$SYSTEMD_DST")" 2>/dev/null || true
}

if (( ! dry_run )) && [[ $PROC_SYS == /proc/sys ]] && (( EUID != 0 )); then
    echo "apply.sh: run as root, or with --dry-run to see what would change" >&2
    exit 1
fi
(( dry_run )) && say "dry run: nothing is changed"
if (( revert )); then revert_all; else apply_all; fi
if (( failed )); then
    echo "apply.sh: some changes failed (see above)" >&2
    exit 1
fi
