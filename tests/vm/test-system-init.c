/* SPDX-License-Identifier: MIT */
/* Stand-in System Kernel init for the Boot Kernel's VM tests (until the real
 * System Kernel initrd of issue 3/5 is used there): prints the command line
 * the Boot Kernel gave this kernel, then powers off. */
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <unistd.h>

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
        printf("KOS-TEST-SYSTEM cmdline=[%s]\n", cmdline);
        fflush(stdout);
        sync();
        reboot(RB_POWER_OFF);
        for (;;)
                pause();
}
