# Tests of what a vendor installs: the manual pages against --help, the one
# version, lintian, and both Debian packages installed into a fresh minimal
# Debian 12 root. `make deb` (part of `make check`) builds what they test:
# $BUILD/deb/, $BUILD/man/. Cost on this 2-core machine: about 20 s a run
# (lintian 5 to 15 s, the fresh root 10 s), plus about 80 s once a week to
# build the root with mmdebstrap (cached in /var/cache/kos/debian-root/).

pkg_version() { "$ROOT/scripts/version.sh"; }

# pkg_deb NAME: the package NAME of this checkout's version, built by make deb.
pkg_deb() {
        local deb
        case $BUILD in /*) deb=$BUILD ;; *) deb=$ROOT/$BUILD ;; esac
        deb=$deb/deb/$1_$(pkg_version)_$(dpkg --print-architecture).deb
        [ -s "$deb" ] || fail "$deb is missing: run make deb"
        echo "$deb"
}

# man_text PAGE_FILE: the page as a reader sees it, one paragraph per line
# (no hyphenation, no line wrapped), so a flag is always one word.
man_text() {
        LC_ALL=C.UTF-8 MANWIDTH=20000 man --nh --nj -l "$1" 2>/dev/null
}

# man_section TEXT_FILE CMD: the subsections of kos(1) for "kos CMD" and its
# subcommands ("   kos manifest create" ... up to the next heading).
man_section() {
        awk -v cmd="kos $2" '
                /^   kos [a-z]/ { sub(/^ +/, ""); on = ($0 == cmd || index($0, cmd " ") == 1); next }
                /^[A-Z]/ { on = 0 }
                on' "$1"
}

# has_word TEXT WORD: WORD appears in TEXT as a word of its own (not as part
# of a longer flag: --keyring is not --keyring-dir).
has_word() { grep -qE -- "(^|[^A-Za-z0-9-])$2([^A-Za-z0-9-]|\$)" <<<"$1"; }

test_every_flag_and_subcommand_kos_help_prints_is_in_its_man_page_section() {
        local man=$ROOT/$BUILD/man cmd sub section help flag all_flags=" --help --version " missing=()
        [ -s "$man/kos.1" ] || fail "$man/kos.1 is missing: run make man"
        man_text "$man/kos.1" >kos.txt
        grep -q '^   kos keygen$' kos.txt || fail "kos(1) has no subsection 'kos keygen': $(head -c 300 kos.txt)"
        # The completion's own reading of the usage lines finds the
        # subcommands, so it is tested on the way; it calls "kos".
        mkdir bin && ln -s "$KOS" bin/kos && export PATH=$PWD/bin:$PATH
        # shellcheck source=../../tools/kos/kos.bash-completion
        . "$ROOT/tools/kos/kos.bash-completion"
        for flag in $("$KOS" --help | grep -o -- '--[a-z0-9][a-z0-9-]*' | sort -u); do
                has_word "$(cat kos.txt)" "$flag" || missing+=("kos $flag (kos --help)")
        done
        for cmd in $("$KOS" --help | awk '/^Commands:/ {c = 1; next} c && /^  [a-z]/ {print $1}'); do
                section=$(man_section kos.txt "$cmd")
                [ -n "$section" ] || { missing+=("a subsection for kos $cmd"); continue; }
                help=$("$KOS" "$cmd" --help)
                for sub in $(_kos_subcommands "$cmd"); do
                        has_word "$section" "$sub" || missing+=("kos $cmd $sub")
                        help+=$'\n'$("$KOS" "$cmd" "$sub" --help)
                done
                for flag in $(grep -o -- '--[a-z0-9][a-z0-9-]*' <<<"$help" | sort -u); do
                        all_flags+="$flag "
                        [ "$flag" = --help ] && continue # SYNOPSIS: kos COMMAND --help
                        has_word "$section" "$flag" || missing+=("kos $cmd ... $flag")
                done
        done
        # The other way: neither kos(1) nor docs/kos-tool.md names a flag that
        # no --help prints (a renamed or removed one).
        for flag in $(grep -oh -- '--[a-z0-9][a-z0-9-]*' kos.txt "$ROOT/docs/kos-tool.md" | sort -u); do
                [[ $all_flags == *" $flag "* ]] || missing+=("$flag, which no kos ... --help prints")
        done
        [ -x "$ROOT/$BUILD/kos-node-manager" ] || fail "$ROOT/$BUILD/kos-node-manager is not built"
        man_text "$man/kos-node-manager.8" >node.txt
        for flag in $("$ROOT/$BUILD/kos-node-manager" --help | grep -o -- '--[a-z0-9][a-z0-9-]*' | sort -u); do
                has_word "$(cat node.txt)" "$flag" || missing+=("kos-node-manager $flag in kos-node-manager(8)")
        done
        [ ${#missing[@]} = 0 ] || fail "the man pages and --help differ: ${missing[*]}"
}

test_kos_version_is_the_version_of_both_packages_of_the_man_pages_and_of_a_dist_tarball() {
        local v clone got
        v=$(pkg_version)
        case $v in 0.0~unknown | "") fail "scripts/version.sh found no version in a git checkout: '$v'" ;; esac
        [ "$("$KOS" --version)" = "kos $v" ] || fail "kos --version says '$("$KOS" --version)', scripts/version.sh '$v'"
        for p in kos-tools kos-device; do
                got=$(dpkg-deb -f "$(pkg_deb "$p")" Version)
                [ "$got" = "$v" ] || fail "$p has version $got, kos $v"
        done
        man_text "$ROOT/$BUILD/man/kos.1" | tail -n 1 | grep -qF "kos $v" || fail "kos(1)'s footer does not say kos $v"
        # CI's fresh clone (scripts/check-in-fresh-root.sh) has the same
        # commit, so the same version, without "+dirty" (uncommitted changes
        # are not in it)...
        git clone --quiet --no-hardlinks "$ROOT" clone
        git -C clone checkout --quiet --detach "$(git -C "$ROOT" rev-parse HEAD)"
        got=$(clone/scripts/version.sh)
        [ "$got" = "${v%+dirty}" ] || fail "a fresh clone says $got, this checkout $v"
        # ...and make dist's tarball, which has no .git, carries it in VERSION,
        # also when unpacked inside another git checkout.
        make -s -C clone dist >/dev/null
        mkdir clone/unpacked
        tar -C clone/unpacked -xzf "clone/build/kos-$got.tar.gz"
        [ ! -e "clone/unpacked/kos-$got/.git" ] || fail "the tarball has a .git"
        got=$(clone/unpacked/kos-"${v%+dirty}"/scripts/version.sh)
        [ "$got" = "${v%+dirty}" ] || fail "the dist tarball says $got, not ${v%+dirty}"
        got=$(clone/unpacked/kos-"${v%+dirty}"/scripts/version.sh --date)
        [ "$got" = "$(git -C "$ROOT" log -1 --format=%ct)" ] || fail "the dist tarball's date is $got"
}

test_packages_are_lintian_clean_and_every_override_says_why() {
        local changes out f
        changes=$(dirname "$(pkg_deb kos-tools)")/kos_$(pkg_version)_$(dpkg --print-architecture).changes
        [ -s "$changes" ] || fail "$changes is missing: run make deb"
        # --info and --pedantic too, so an override that no longer matches
        # anything (unused-override) fails as well.
        out=$(lintian --info --pedantic "$changes" 2>&1 | grep -v -e '^N:' -e '^running with root privileges' || true)
        [ -z "$out" ] || fail "lintian: $out"
        for f in "$ROOT"/packaging/debian/*.lintian-overrides; do
                awk -v f="${f##*/}" '
                        /^#/ { comment = 1; next }
                        /^[[:space:]]*$/ { comment = 0; next }
                        !comment { print f ": no comment says why: " $0; bad = 1 }
                        END { exit bad }' "$f" || fail "every lintian override needs its reason in a comment above it"
        done
}

# ---- A fresh minimal Debian 12 root, as CI's (scripts/check-in-fresh-root.sh) ----

# The root, built once per machine and week with mmdebstrap --variant=minbase
# (plus man-db, for man kos) into /var/cache/kos/debian-root/, apt's package
# lists kept. Each test gets it as the lower layer of an overlay, so it stays
# pristine; the packages' dependencies, downloaded once, are kept beside it.
PKG_ROOT_CACHE=${PKG_ROOT_CACHE:-/var/cache/kos/debian-root}
pkg_base_root() {
        local params="--variant=minbase --include=man-db" dir sources=() aptopts=() f
        # The directory's name changes with the parameters, so a change rebuilds.
        dir=$PKG_ROOT_CACHE/minbase-$(echo "$params" | sha256sum | cut -c1-8)
        mkdir -p "$PKG_ROOT_CACHE/apt-archives/partial"
        (
                flock 9
                if [ -e "$dir/.done" ] && [ -z "$(find "$dir/.done" -mtime +6)" ]; then exit 0; fi
                rm -rf "$dir" "$dir.tmp"
                # The host's apt sources and settings, so the root reaches the same
                # archive (as scripts/check-in-fresh-root.sh does).
                for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list; do
                        [ -s "$f" ] && grep -q 'debian' "$f" && sources+=("$f")
                done
                for f in /etc/apt/apt.conf.d/*; do
                        [ -f "$f" ] && grep -q 'Check-Valid-Until\|Proxy\|proxy' "$f" && aptopts+=(--aptopt="$f")
                done
                echo "building a minimal Debian 12 root with mmdebstrap in $dir (once a week)" >&2
                # shellcheck disable=SC2086 # $params is the words above
                mmdebstrap --quiet --skip=cleanup/apt/lists "${aptopts[@]}" $params bookworm "$dir.tmp" "${sources[@]}" >&2 || exit 1
                mv "$dir.tmp" "$dir" && touch "$dir/.done"
        ) 9>"$PKG_ROOT_CACHE/.lock" || fail "mmdebstrap could not build the root"
        echo "$dir"
}

# pkg_fresh_root DIR: DIR/root is a fresh copy of the base root (overlay),
# with /etc/resolv.conf and apt's download cache; all unmounted when the
# test's shell exits.
pkg_fresh_root() {
        local base dir=$1
        [ "$(id -u)" = 0 ] || fail "needs root (mmdebstrap, overlay mount, chroot)"
        base=$(pkg_base_root)
        mkdir -p "$dir/upper" "$dir/work" "$dir/root"
        mount -t overlay overlay -o "lowerdir=$base,upperdir=$dir/upper,workdir=$dir/work" "$dir/root"
        PKG_MOUNTS=("$dir/root")
        trap pkg_unmount EXIT
        mount --bind "$PKG_ROOT_CACHE/apt-archives" "$dir/root/var/cache/apt/archives"
        PKG_MOUNTS=("$dir/root/var/cache/apt/archives" "${PKG_MOUNTS[@]}")
        mount -t proc proc "$dir/root/proc" # kos finds its inits from /proc/self/exe
        PKG_MOUNTS=("$dir/root/proc" "${PKG_MOUNTS[@]}")
        cp -L /etc/resolv.conf "$dir/root/etc/resolv.conf"
}
PKG_MOUNTS=()
pkg_unmount() {
        local m
        for m in "${PKG_MOUNTS[@]}"; do umount "$m" 2>/dev/null || umount -l "$m"; done
        PKG_MOUNTS=()
}

in_root() { chroot root /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"; }

# readme_paths PACKAGE: the paths README.md's table says PACKAGE installs.
readme_paths() {
        grep "^| \`$1\` |" "$ROOT/README.md" | grep -o '`/[^`]*`' | tr -d '`'
}

# undocumented_paths PACKAGE: what dpkg -L lists outside README's paths
# (a path ending in / covers everything below it; parents are allowed).
undocumented_paths() {
        local allowed path a ok
        allowed=$(readme_paths "$1")
        [ -n "$allowed" ] || { echo "README.md has no row for $1"; return; }
        in_root dpkg -L "$1" | grep -v -e '^diverted by ' -e '^package diverts others to: ' | while read -r path; do
                ok=
                for a in $allowed; do
                        case $a in
                        */) [[ $path/ == "$a"* || $a == "$path"/* ]] && ok=1 ;;
                        *) [[ $path == "$a" || $a == "$path"/* || $path == /. ]] && ok=1 ;;
                        esac
                done
                [ -n "$ok" ] || echo "$path"
        done
}

test_both_packages_install_in_a_fresh_debian_12_root_where_kos_its_man_page_and_node_manager_work() {
        local v tools device out
        v=$(pkg_version) tools=$(pkg_deb kos-tools) device=$(pkg_deb kos-device)
        pkg_fresh_root .
        cp "$tools" "$device" root/tmp/
        # apt resolves the packages' dependencies from Debian's archive; with
        # package lists a week old it may need fresh ones.
        in_root apt-get install -y -qq --no-install-recommends "/tmp/${tools##*/}" "/tmp/${device##*/}" >apt.log 2>&1 ||
                { in_root apt-get update -qq >>apt.log 2>&1 &&
                  in_root apt-get install -y -qq --no-install-recommends "/tmp/${tools##*/}" "/tmp/${device##*/}" >>apt.log 2>&1; } ||
                fail "apt-get install of both packages failed: $(tail -n 5 apt.log)"

        out=$(in_root kos --help) || fail "kos --help failed: $out"
        grep -q '^  push ' <<<"$out" || fail "with both packages, kos is not the host kos: $out"
        [ "$(in_root kos --version)" = "kos $v" ] || fail "kos --version in the root: $(in_root kos --version)"
        out=$(in_root man kos 2>&1) || fail "man kos failed: $out"
        grep -q 'kos manifest create' <<<"$out" || fail "man kos does not show kos(1): $(head -c 300 <<<"$out")"
        in_root man 5 kos-formats >/dev/null 2>&1 || fail "man 5 kos-formats failed"
        in_root man 8 kos-node-manager >/dev/null 2>&1 || fail "man 8 kos-node-manager failed"
        out=$(in_root /usr/lib/kos/kos-node-manager --help) || fail "kos-node-manager --help failed: $out"
        grep -q '^Usage: kos-node-manager' <<<"$out" || fail "kos-node-manager --help: $out"
        in_root bash -c '. /usr/share/bash-completion/completions/kos && complete -p kos' >/dev/null ||
                fail "the bash completion does not load"
        # The installed kos finds the Boot Kernel's init in /usr/lib/kos.
        mkdir root/tmp/keyring && "$KOS" keygen root/tmp/vendor.key root/tmp/keyring/vendor.pem >/dev/null
        head -c 100000 /dev/urandom >root/tmp/vmlinuz
        out=$(in_root kos mkboot --kernel /tmp/vmlinuz --keyring /tmp/keyring --output /tmp/boot --compress gzip 2>&1) ||
                fail "kos mkboot in the root: $out"
        zcat root/tmp/boot/initramfs.img | cpio -i --quiet --to-stdout init | cmp -s - root/usr/lib/kos/kos-boot-init ||
                fail "the Boot Kernel's /init is not /usr/lib/kos/kos-boot-init"
        for p in kos-tools kos-device; do
                out=$(undocumented_paths "$p")
                [ -z "$out" ] || fail "dpkg -L $p lists paths README.md does not document: $out"
        done

        # The device's static kos waits behind a diversion while kos-tools is
        # installed, and comes back when it is removed.
        in_root dpkg-divert --list /usr/bin/kos | grep -q 'by kos-tools' || fail "no diversion of /usr/bin/kos by kos-tools"
        in_root dpkg -r kos-tools >dpkg.log 2>&1 || fail "dpkg -r kos-tools: $(cat dpkg.log)"
        out=$(in_root kos --help) || fail "after removing kos-tools, kos --help failed: $out"
        ! grep -q '^  push ' <<<"$out" || fail "after removing kos-tools, /usr/bin/kos is still the host kos"
        [ "$(in_root kos --version)" = "kos $v" ] || fail "the device's kos --version: $(in_root kos --version)"
        [ ! -e root/usr/lib/kos/kos-static ] || fail "the diverted copy stayed behind"
}
