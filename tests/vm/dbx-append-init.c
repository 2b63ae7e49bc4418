/* SPDX-License-Identifier: MIT */
/* PID 1 of a test UKI (tests/vm/test-dbx.sh) that plays the device's part of
 * a dbx update under OVMF Secure Boot: loads efivarfs (Debian's signed
 * module), appends /dbx.auth to dbx the way Node Manager will (one write of
 * the 4-byte attributes NV|BS|RT|TIME_BASED_AUTH|APPEND and the .auth to
 * efivarfs; the firmware checks the KEK signature), reports, powers off.
 * Test-only: never shipped. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define DBX "/sys/firmware/efi/efivars/dbx-d719b2cb-3d3a-4596-a3bc-dad00e67656f"

/* The .auth and efivarfs.ko are built into this program (-DDBX_AUTH=path
 * -DEFIVARFS_KO=path): kos mkboot puts only the init and the keyring into a
 * UKI's initramfs, and the test needs no other UKI builder. */
#define EMBED(name, path)                                                        \
        __asm__(".section .rodata\n.balign 16\n.global " #name "_start\n" #name "_start:\n" \
                ".incbin \"" path "\"\n.global " #name "_end\n" #name "_end:\n.previous\n")
EMBED(dbx_auth, DBX_AUTH);
EMBED(efivarfs_ko, EFIVARFS_KO);
extern const unsigned char dbx_auth_start[], dbx_auth_end[], efivarfs_ko_start[], efivarfs_ko_end[];

static void say(const char *format, const char *what, int error) {
        FILE *console = fopen("/dev/console", "we");
        if (!console)
                return;
        fprintf(console, "KOS-DBX %s %s%s%s\n", format, what, error ? ": " : "", error ? strerror(error) : "");
        fclose(console);
}

static long file_size(const char *path) {
        struct stat st;
        return stat(path, &st) < 0 ? -1 : (long)st.st_size;
}

static int append_dbx(void) {
        static unsigned char buf[1 << 20];
        size_t n = (size_t)(dbx_auth_end - dbx_auth_start);

        if (syscall(SYS_init_module, efivarfs_ko_start, (unsigned long)(efivarfs_ko_end - efivarfs_ko_start), "") < 0)
                return say("failed", "load efivarfs.ko", errno), -1;
        if (mount("efivarfs", "/sys/firmware/efi/efivars", "efivarfs", 0, NULL) < 0)
                return say("failed", "mount efivarfs", errno), -1;
        say("dbx bytes before:", file_size(DBX) < 0 ? "none" : "some", 0);
        buf[0] = 0x67; /* EFI_VARIABLE_NON_VOLATILE|BOOTSERVICE|RUNTIME|TIME_BASED_AUTHENTICATED_WRITE|APPEND_WRITE */
        if (n == 0 || n > sizeof buf - 4)
                return say("failed", "the built-in .auth", EINVAL), -1;
        memcpy(buf + 4, dbx_auth_start, n);
        int out = open(DBX, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (out < 0 || write(out, buf, n + 4) != (ssize_t)(n + 4))
                return say("failed", "append to dbx", errno), -1;
        close(out);
        say("appended", "to dbx", 0);
        return 0;
}

int main(void) {
        mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
        mount("proc", "/proc", "proc", 0, NULL);
        mount("sysfs", "/sys", "sysfs", 0, NULL);
        append_dbx();
        say("done", "", 0);
        sync();
        reboot(RB_POWER_OFF);
        for (;;)
                pause();
}
