/* SPDX-License-Identifier: MIT */
/* Helpers for the inits that run as PID 1 in the Boot Kernel and the System
 * Kernel: timestamped console log, kernel command line, module loading,
 * finding a block device by label/UUID with libblkid. None of them exits:
 * in PID 1 an exit is a kernel panic, so errors are returned.
 *
 * One file per job: log.c (log, clocks, API filesystems), cmdline.c,
 * modules.c, device.c. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Log prefix, e.g. "kos-boot". Lines look like
 *   kos-boot [    1.234567] message
 * with the time since the kernel started (CLOCK_BOOTTIME). */
void early_log_init(const char *prefix);
void early_log(const char *format, ...) __attribute__((format(printf, 1, 2)));
double early_uptime(void);
/* The CPU's cycle counter (x86 TSC; 0 elsewhere). It is not reset by kexec,
 * so the Boot Kernel's and the System Kernel's logs can be put on one time
 * line (make bench-boot does, with the rate from two Boot Kernel lines). */
uint64_t early_cycles(void);

/* Mounts /proc, /sys and /dev (devtmpfs) and points fds 0-2 at /dev/console. */
int early_mount_api_filesystems(void);

/* Reads /proc/cmdline once; early_cmdline_get returns the value of the last
 * "key=value" (or "" for a bare "key"), or NULL when absent. */
int early_cmdline_load(void);
const char *early_cmdline_get(const char *key);
/* "key=SECONDS", 0 to 3600; fallback when absent, or (logged) when not that. */
unsigned early_cmdline_seconds(const char *key, unsigned fallback);
/* Uses text instead of /proc/cmdline (tests). */
void early_cmdline_set(const char *text);

/* Loads the modules listed in list_file (one per line, "path: dep dep",
 * paths relative to dir; a line without ':' waits for all lines before it)
 * with finit_module, on up to 4 threads: a module starts once the modules it
 * names are done. Already loaded is fine; one that fails is logged and
 * skipped (-ENOEXEC at the end). */
/* What loads one module (finit_module by default; tests replace it). */
extern int (*early_module_loader)(int dirfd, const char *path);
int early_load_modules(const char *dir, const char *list_file, unsigned *ret_loaded);

struct early_device {
        char path[64];   /* /dev/vda1 */
        char type[32];   /* ext4 */
        char uuid[64];
        char label[64];
        char partlabel[64]; /* GPT partition name */
};

/* spec is LABEL=..., UUID=..., PARTLABEL=... or a /dev path, or several
 * joined by '|' (any matches). All but PARTLABEL must name a device holding a
 * filesystem. Probes the block devices in
 * /sys/class/block with libblkid every 50 ms until one matches or timeout_ms
 * passes (-ETIMEDOUT). */
int early_find_device(const char *spec, unsigned timeout_ms, struct early_device *ret);
