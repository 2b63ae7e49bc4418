/* SPDX-License-Identifier: MIT */
/* Stand-in init for the VM tests: prints the command line its kernel got,
 * then powers off. As the Boot Kernel tests' System Kernel initrd it shows
 * what the Boot Kernel handed on; as /sbin/init of a small KOS root (the
 * System Kernel tests that need no systemd) it also reports what the System
 * Kernel assembled: the layers under /run/kos/layers, the files named
 * /etc/kos-layer-* the overlay shows, boot.json's ImageFS identity and what
 * measurements.json says about PCR 8, and what reading /etc/kos-victim (a
 * file of a dm-verity layer the tests alter on the disk) gives.
 * With a TPM it prints the SHA-256 value of PCR 8 (the Boot Kernel's
 * measurement, docs/tpm.md) as "KOS-TEST-PCR 8 HEX". */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <unistd.h>

static int count_entries(const char *dir, const char *prefix) {
        DIR *d = opendir(dir);
        int n = 0;

        if (!d)
                return -1;
        for (struct dirent *de; (de = readdir(d));)
                if (de->d_name[0] != '.' && strncmp(de->d_name, prefix, strlen(prefix)) == 0)
                        n++;
        closedir(d);
        return n;
}

static void report_root(void) {
        char line[512];
        FILE *f = fopen("/run/kos/boot.json", "re");

        if (!f)
                return;
        printf("KOS-TEST-ROOT layers=%d etc-files=%d\n", count_entries("/run/kos/layers", ""),
               count_entries("/etc", "kos-layer-"));
        while (fgets(line, sizeof line, f))
                if (strstr(line, "\"uuid\"") || strstr(line, "\"partuuid\""))
                        printf("KOS-TEST-ROOT boot.json %s", line + strspn(line, " "));
        fclose(f);
        if (!(f = fopen("/run/kos/measurements.json", "re")))
                return;
        while (fgets(line, sizeof line, f))
                if (strstr(line, "\"matches\"") || strstr(line, "\"pcr_value\"") || strstr(line, "\"replayed\"") ||
                    strstr(line, "\"tpm\""))
                        printf("KOS-TEST-ROOT measurements.json %s", line + strspn(line, " "));
        fclose(f);
}

/* Its first 16 bytes, or the error reading them gave (dm-verity: EIO). */
static void report_victim(void) {
        char data[17] = "";
        int fd = open("/etc/kos-victim", O_RDONLY | O_CLOEXEC);

        if (fd < 0)
                return;
        ssize_t n = read(fd, data, sizeof data - 1);
        if (n < 0)
                printf("KOS-TEST-ROOT victim-error=%s\n", strerror(errno));
        else
                printf("KOS-TEST-ROOT victim=%.*s\n", (int)n, data);
        close(fd);
}

static void report_pcr(void) {
        char value[128] = "";

        mkdir("/sys", 0755);
        mount("sysfs", "/sys", "sysfs", 0, NULL);
        FILE *f = fopen("/sys/class/tpm/tpm0/pcr-sha256/8", "re");
        if (!f)
                return;
        if (fgets(value, sizeof value, f)) {
                value[strcspn(value, "\n")] = '\0';
                printf("KOS-TEST-PCR 8 %s\n", value);
        }
        fclose(f);
}

int main(void) {
        char cmdline[4096] = "";

        mkdir("/proc", 0755);
        mount("proc", "/proc", "proc", 0, NULL);
        FILE *f = fopen("/proc/cmdline", "re");
        if (f) {
                if (!fgets(cmdline, sizeof cmdline, f))
                        cmdline[0] = '\0';
                fclose(f);
        }
        cmdline[strcspn(cmdline, "\n")] = '\0';
        report_root();
        report_victim();
        report_pcr();
        printf("KOS-TEST-SYSTEM cmdline=[%s]\n", cmdline);
        fflush(stdout);
        sync();
        reboot(RB_POWER_OFF);
        for (;;)
                pause();
}
