# The stage times of one boot's console log, as "stage seconds" lines on the
# first kernel's clock; used by bench-boot.sh (awk -v mode=kos|stock|direct).
# For kos the two kernels' clocks are joined through the TSC that both inits
# log ("cycles N"): its rate is taken from the Boot Kernel's two lines, and
# the System Kernel started s0 seconds of its own clock before its init
# logged c2.
function num(s, key,   v) { v = s; sub(".*" key, "", v); sub(/[ )].*/, "", v); return v + 0 }
function stamp(s,   v) { v = s; sub(/^[^[]*\[ */, "", v); sub(/\].*/, "", v); return v + 0 }
{ sub(/\r$/, "") }
/kos-boot .*Boot Kernel init started/ { b0 = stamp($0); c0 = num($0, "cycles ") }
/kos-boot .*selection took/            { sel = stamp($0) }
/kos-boot .*System Kernel loaded by kexec/ { kl = stamp($0) }
/kos-boot .*jumping to the System/     { b1 = stamp($0); c1 = num($0, "cycles ") }
/kos-system .*System Kernel init started/ { s0 = stamp($0); c2 = num($0, "cycles ") }
/kos-system .*root assembled/          { ra = stamp($0) }
/KOS-BENCH-MARKER/ {
        up = num($0, "uptime="); ini = num($0, "initramfs="); sd = num($0, "systemd_us=") / 1e6
        si = num($0, "sysinit_us=") / 1e6; ba = num($0, "basic_us=") / 1e6; mu = num($0, "multiuser_us=") / 1e6
}
END {
        if (!up) { print "error no KOS-BENCH-MARKER line"; exit 1 }
        off = 0
        if (mode == "kos") {
                if (c1 <= c0 || b1 <= b0 || c2 <= c1) { print "error cycle counter missing or not increasing"; exit 1 }
                hz = (c1 - c0) / (b1 - b0)
                # The System Kernel started s0 seconds before its init logged c2.
                off = (c2 - c0) / hz + b0 - s0
                printf "boot-init %.3f\nselected %.3f\nkexec-loaded %.3f\njump %.3f\n", b0, sel, kl, b1
                printf "system-kernel %.3f\n", off
        }
        if (s0) printf "initrd-init %.3f\nroot-assembled %.3f\n", off + s0, off + ra
        else printf "initrd-init %.3f\n", ini
        printf "systemd %.3f\n", off + sd
        if (si) printf "sysinit %.3f\nbasic %.3f\nmulti-user %.3f\n", off + si, off + ba, off + mu
        printf "marker %.3f\n", off + up
}
