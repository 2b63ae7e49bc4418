/* SPDX-License-Identifier: MIT */
/* Arming the Intel 6300ESB watchdog (QEMU's `-device i6300esb`) from PID 1
 * of the Boot Kernel, whose kernel has no watchdog driver: through PCI
 * sysfs (config space and BAR 0), the register sequence of Linux's
 * drivers/watchdog/i6300esb.c. Armed with the lock bit (nowayout): nothing
 * but a reset stops it, so the System Kernel's driver cannot switch it off
 * on probe, and systemd (RuntimeWatchdogSec) must take over feeding
 * (docs/trust-chain.md, "The watchdog"). */
#include "early.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PCI_DEVICES "/sys/bus/pci/devices"
#define ESB_VENDOR 0x8086
#define ESB_DEVICE 0x25ab
#define PCI_COMMAND 0x04
#define PCI_COMMAND_MEMORY 0x2
#define ESB_CONFIG_REG 0x60 /* 16 bits */
#define ESB_LOCK_REG 0x68   /* 8 bits */
#define ESB_WDT_ENABLE 0x02
#define ESB_WDT_LOCK 0x01
#define ESB_TIMER1_REG 0x00
#define ESB_TIMER2_REG 0x04
#define ESB_RELOAD_REG 0x0c
#define ESB_WDT_RELOAD 0x100
#define ESB_UNLOCK1 0x80
#define ESB_UNLOCK2 0x86
#define ESB_MAX_PRELOAD 0xfffffu /* 20-bit timers */

static unsigned read_hex_file(int dirfd, const char *name) {
        char buf[32] = "";
        int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return 0;
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        return n > 0 ? (unsigned)strtoul(buf, NULL, 16) : 0;
}

/* The PCI device directory's fd of the first 6300ESB, or -ENODEV. */
static int find_esb(const char *pci_devices, char *ret_name, size_t size) {
        DIR *d = opendir(pci_devices);
        struct dirent *e;
        int found = -ENODEV;

        if (!d)
                return -ENODEV;
        while (found < 0 && (e = readdir(d))) {
                if (e->d_name[0] == '.')
                        continue;
                int fd = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (fd < 0)
                        continue;
                if (read_hex_file(fd, "vendor") == ESB_VENDOR && read_hex_file(fd, "device") == ESB_DEVICE) {
                        snprintf(ret_name, size, "%s", e->d_name);
                        found = fd;
                } else
                        close(fd);
        }
        closedir(d);
        return found;
}

static int config_write(int fd, off_t offset, const void *value, size_t size) {
        /* Sizes matter: the device decodes a 1-byte write to the lock register
         * and a 2-byte write to the configuration register only. */
        return pwrite(fd, value, size, offset) == (ssize_t)size ? 0 : -errno;
}

static void reg_unlock(volatile uint8_t *bar) {
        *(volatile uint16_t *)(bar + ESB_RELOAD_REG) = ESB_UNLOCK1;
        *(volatile uint16_t *)(bar + ESB_RELOAD_REG) = ESB_UNLOCK2;
}

/* Programs and starts the watchdog: a reset after about `seconds` without a
 * reload (two stages of seconds/2 each, as Linux's driver counts them). */
static int esb_start(int devfd, unsigned seconds) {
        uint16_t command, config = 0x0003; /* reset on timeout, 1 kHz clock, no interrupt */
        uint8_t lock = ESB_WDT_ENABLE | ESB_WDT_LOCK;
        uint32_t preload = seconds << 9;
        unsigned long long start = 0, end = 0, flags = 0;
        char line[128] = "";
        int r;

        int cfg = openat(devfd, "config", O_RDWR | O_CLOEXEC | O_NOFOLLOW);
        if (cfg < 0)
                return -errno;
        if (pread(cfg, &command, sizeof command, PCI_COMMAND) != (ssize_t)sizeof command) {
                r = -EIO;
                goto out;
        }
        command |= PCI_COMMAND_MEMORY; /* no driver enabled the device */
        if ((r = config_write(cfg, PCI_COMMAND, &command, sizeof command)) < 0 ||
            (r = config_write(cfg, ESB_CONFIG_REG, &config, sizeof config)) < 0)
                goto out;
        int res = openat(devfd, "resource", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        ssize_t n = res >= 0 ? read(res, line, sizeof line - 1) : -1;
        if (res >= 0)
                close(res);
        if (n <= 0 || sscanf(line, "%llx %llx %llx", &start, &end, &flags) != 3 || end <= start) {
                r = -ENXIO;
                goto out;
        }
        long page = sysconf(_SC_PAGESIZE);
        int bar_fd = openat(devfd, "resource0", O_RDWR | O_SYNC | O_CLOEXEC | O_NOFOLLOW);
        if (bar_fd < 0) {
                r = -errno;
                goto out;
        }
        void *map = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE, MAP_SHARED, bar_fd, 0);
        close(bar_fd);
        if (map == MAP_FAILED) {
                r = -errno;
                goto out;
        }
        volatile uint8_t *bar = (volatile uint8_t *)map + (start & (unsigned long long)(page - 1));
        reg_unlock(bar);
        *(volatile uint32_t *)(bar + ESB_TIMER1_REG) = preload;
        reg_unlock(bar);
        *(volatile uint32_t *)(bar + ESB_TIMER2_REG) = preload;
        reg_unlock(bar);
        *(volatile uint16_t *)(bar + ESB_RELOAD_REG) = ESB_WDT_RELOAD;
        munmap(map, (size_t)page);
        r = config_write(cfg, ESB_LOCK_REG, &lock, sizeof lock);
out:
        close(cfg);
        return r;
}

int early_watchdog_arm_at(const char *pci_devices, unsigned seconds, char *ret_device, size_t size) {
        if (seconds < 2 || seconds > (ESB_MAX_PRELOAD >> 9))
                return -ERANGE;
        int devfd = find_esb(pci_devices, ret_device, size);
        if (devfd < 0)
                return devfd;
        int r = esb_start(devfd, seconds);
        close(devfd);
        return r;
}

int early_watchdog_arm(unsigned seconds, char *ret_device, size_t size) {
        return early_watchdog_arm_at(PCI_DEVICES, seconds, ret_device, size);
}
