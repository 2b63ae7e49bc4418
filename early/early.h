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
/* The command line exactly as read (with /proc/cmdline's final newline). */
const char *early_cmdline_raw(void);
/* Uses text instead of /proc/cmdline (tests). */
void early_cmdline_set(const char *text);

/* Arms the first Intel 6300ESB watchdog (PCI 8086:25ab) found, locked
 * (only a reset stops it): the machine resets about `seconds` (2 to 2047)
 * later unless something reloads it. ret_device gets its PCI address.
 * -ENODEV without one, -ERANGE for seconds out of range (watchdog.c). */
int early_watchdog_arm(unsigned seconds, char *ret_device, size_t size);
/* The same on another tree than /sys/bus/pci/devices (tests). */
int early_watchdog_arm_at(const char *pci_devices, unsigned seconds, char *ret_device, size_t size);

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
        char partuuid[64];  /* GPT partition UUID (MBR: disk id-partition number) */
};

#define EARLY_MAX_DEVICES 256
/* What the handoff says for a device that is not a partition. */
#define EARLY_NO_PARTUUID "none"

/* spec is LABEL=..., UUID=..., PARTLABEL=... or a /dev path, or several
 * joined by '|' (any matches). All but PARTLABEL must name a device holding a
 * filesystem. Lists the block devices every 50 ms until exactly one matches
 * (0), or timeout_ms passes (-ETIMEDOUT). When more than one matches it does
 * not guess: it logs every one of them and returns -ENOTUNIQ at once. */
int early_find_device(const char *spec, unsigned timeout_ms, struct early_device *ret);

/* The device the Boot Kernel verified, by the identity it handed on: the one
 * device whose filesystem UUID is uuid (errors as above), and whose
 * partition UUID is partuuid (EARLY_NO_PARTUUID for a whole disk), or
 * -EXDEV. */
int early_find_identified_device(const char *uuid, const char *partuuid, unsigned timeout_ms, struct early_device *ret);

/* The matcher on its own: 0 and ret_index when exactly one of devices
 * matches spec, -ENOENT for none, -ENOTUNIQ for more; ret_n_matches counts
 * them. */
int early_match_devices(const struct early_device *devices, size_t n, const char *spec, size_t *ret_index,
                        size_t *ret_n_matches);

/* The porting layer under early_find_device: fills devices (at most max)
 * with every block device, probed. The default reads /sys/class/block with
 * libblkid; unit tests put a list of their own here. */
extern int (*early_device_lister)(struct early_device *devices, size_t max, size_t *ret_n);

/* The Boot Kernel's handoff: what it appends to the manifest's signed
 * cmdline, and all the System Kernel takes from it. One format, built by one
 * function on both sides:
 *
 *   <signed cmdline> kos.manifest=<id> kos.imagefs=UUID=<uuid> kos.imagefs_partuuid=<partuuid> kos.tpm_marker=<0|1>
 *
 * (no space before kos.manifest= when the signed cmdline is empty). id is the
 * manifest id (64 lowercase hex); uuid the ImageFS's filesystem UUID and
 * partuuid its partition's UUID (EARLY_NO_PARTUUID on a whole disk), both
 * 1 to 63 of [0-9A-Za-z-]; tpm_marker 1 when the Boot Kernel found a TPM and
 * extends PCR 15 with the verified-boot marker before the kexec (the System
 * Kernel must then extend the leave event or stop: docs/tpm.md). The System
 * Kernel boots only when its /proc/cmdline is exactly
 * early_handoff_format(manifest cmdline, handoff). */
struct early_handoff {
        char manifest_id[65];
        char imagefs_uuid[64];
        char imagefs_partuuid[64];
        bool tpm_marker;
};

/* -EINVAL when a field breaks the rules above, -E2BIG when out is too small. */
int early_handoff_format(const char *signed_cmdline, const struct early_handoff *handoff, char *out, size_t size);
/* Takes the handoff from the end of cmdline (a trailing newline, as in
 * /proc/cmdline, is ignored): -EBADMSG unless it ends with exactly the four
 * parameters above. It does not check the part before them: the caller
 * compares the whole with early_handoff_format() once the manifest's signed
 * cmdline is known. */
int early_handoff_parse(const char *cmdline, struct early_handoff *ret);
