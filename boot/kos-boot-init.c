/* SPDX-License-Identifier: MIT */
/* kos-boot-init: PID 1 of the Boot Kernel's initramfs.
 *
 * Finds and mounts the ImageFS, selects the first valid manifest of its
 * `active` list with the core library against the keyring built into this
 * initramfs, and kexecs into that manifest's System Kernel, loading the very
 * bytes it verified (sealed memfds), with the manifest's signed cmdline and
 * the handoff (early_handoff_format: manifest id, ImageFS filesystem and
 * partition UUIDs, whether PCR 15 gets the verified-boot marker). An
 * ImageFS spec that matches more than one device is refused, never guessed. When nothing is valid it prints every
 * reason and halts, or reboots after a delay with kos.on_fail=reboot. It
 * never runs unverified code and never exits (an exiting PID 1 panics).
 *
 * Kernel command line (its own, never passed on):
 *   kos.imagefs=LABEL=...|UUID=...|/dev/...   default LABEL=KOS-IMAGEFS
 *   kos.imagefs_timeout=SECONDS               default 10
 *   kos.on_fail=halt|reboot                   default halt
 *   kos.on_fail_delay=SECONDS                 default 10
 *   kos.watchdog=SECONDS                      arm the i6300esb watchdog, locked
 *                                             (default: not armed; the System
 *                                             Kernel's systemd must feed it:
 *                                             docs/trust-chain.md)
 *   kos.tpm=required                          boot nothing without a TPM
 *                                             (docs/tpm.md); default: without
 *                                             one, the ImageFS floor alone.
 *                                             A TPM that is there but whose
 *                                             floor counter cannot be used
 *                                             boots nothing either way
 */
#include <errno.h>
#include <inttypes.h>
#include <linux/kexec.h>
#include <pthread.h>
#include <stdbool.h>
#include <fcntl.h>
#include <linux/reboot.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "bootstate.h"
#include "early.h"
#include "keyring.h"
#include "select.h"
#include "layout.h"
#include "tpm.h"
#include "uki.h"

#define IMAGEFS_MOUNT KOS_INITRAMFS_IMAGEFS_MOUNT
#define MODULES_DIR "/lib/modules"
#define MAX_KEXEC_CMDLINE 2048 /* x86 COMMAND_LINE_SIZE */

/* The end of every failed boot: nothing unverified runs, PID 1 never exits. */
static void __attribute__((noreturn)) fail_boot(void) {
        const char *mode = early_cmdline_get("kos.on_fail");

        sync();
        if (mode && strcmp(mode, "reboot") == 0) {
                unsigned delay = early_cmdline_seconds("kos.on_fail_delay", 10);
                early_log("no verified system to boot: rebooting in %u s", delay);
                sleep(delay);
                reboot(RB_AUTOBOOT);
        } else {
                early_log("no verified system to boot: halting");
                reboot(RB_HALT_SYSTEM);
        }
        for (;;)
                pause();
}

/* First thing, so that a UKI that hangs anywhere later (a trial, above
 * all: docs/trust-chain.md, "The watchdog") is reset and the firmware
 * falls back to BootOrder's good slot. */
static void arm_watchdog(void) {
        unsigned seconds = early_cmdline_seconds("kos.watchdog", 0);
        char device[64] = "";

        if (seconds == 0)
                return;
        int r = early_watchdog_arm(seconds, device, sizeof device);
        if (r < 0)
                early_log("watchdog (kos.watchdog=%u) not armed: %s", seconds,
                          r == -ENODEV ? "no i6300esb watchdog found" : strerror(-r));
        else
                early_log("watchdog i6300esb %s armed and locked: reset in %u s unless the System Kernel feeds it", device,
                          seconds);
}

/* The modules this initramfs carries, in the order computed when it was built. */
static void load_modules(void) {
        struct utsname u;
        char dir[128];
        unsigned loaded = 0;
        double start = early_uptime();

        if (uname(&u) < 0)
                return;
        /* A kernel made for this job (scripts/build-boot-kernel.sh) has its
         * drivers built in: kos mkboot gives it no module list. */
        if (access(KOS_MODULES_LIST, F_OK) < 0 && errno == ENOENT) {
                early_log("no modules to load: kernel %s has its drivers built in", u.release);
                return;
        }
        snprintf(dir, sizeof dir, MODULES_DIR "/%s", u.release);
        int r = early_load_modules(dir, KOS_MODULES_LIST, &loaded);
        if (r < 0)
                early_log("module loading stopped (%s); devices may be missing", strerror(-r));
        else
                early_log("loaded %u modules for kernel %s in %.3f s", loaded, u.release, early_uptime() - start);
}

static int mount_imagefs(struct early_device *ret) {
        const char *spec = early_cmdline_get("kos.imagefs");
        unsigned timeout = early_cmdline_seconds("kos.imagefs_timeout", 10);
        double start = early_uptime();
        int r;

        if (!spec || !*spec)
                spec = "LABEL=" KOS_LABEL_IMAGEFS;
        early_log("looking for the ImageFS (%s), waiting up to %u s", spec, timeout);
        r = early_find_device(spec, timeout * 1000, ret);
        if (r == -ETIMEDOUT) {
                early_log("ImageFS not found: no block device matched %s within %u s", spec, timeout);
                return r;
        }
        if (r == -ENOTUNIQ) {
                early_log("ImageFS ambiguous: more than one device matches %s (listed above); booting none", spec);
                return r;
        }
        if (r < 0) {
                early_log("ImageFS not found: %s", strerror(-r));
                return r;
        }
        early_log("ImageFS is %s (%s, UUID %s, PARTUUID %s), found after %.3f s", ret->path, ret->type, ret->uuid,
                  ret->partuuid[0] ? ret->partuuid : EARLY_NO_PARTUUID, early_uptime() - start);
        if (mkdir(IMAGEFS_MOUNT, 0755) < 0 && errno != EEXIST)
                return -errno;
        /* Read-only, and nothing on it is ever executed or opened as a device. */
        if (mount(ret->path, IMAGEFS_MOUNT, ret->type, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) {
                r = -errno;
                early_log("cannot mount %s (%s) read-only: %s", ret->path, ret->type, strerror(-r));
                return r;
        }
        return 0;
}

/* Boot state is written here, before the kexec: the ImageFS is made
 * writable for one rename or create and its fsync, then read-only again. */
static struct kos_imagefs *imagefs_for_state;

static int remount_imagefs(bool writable) {
        const unsigned long flags = MS_NOSUID | MS_NODEV | MS_NOEXEC | (writable ? 0 : MS_RDONLY);

        return mount(NULL, IMAGEFS_MOUNT, NULL, MS_REMOUNT | flags, NULL) < 0 ? -errno : 0;
}

/* A state write counts only once it is on the disk: a failed syncfs fails
 * it (a try not durably consumed rejects the manifest; a boot not durably
 * recorded as unconfirmed is checked in full). */
static int finish_state_write(int r) {
        int k;

        if (syncfs(imagefs_for_state->root_fd) < 0 && r >= 0)
                r = -errno;
        if ((k = remount_imagefs(false)) < 0 && r >= 0)
                r = k;
        return r;
}

/* Records one boot of a manifest on trial before it is booted. */
static int consume_try(const uint8_t id[static KOS_SHA256_LEN], unsigned *ret_left, void *userdata) {
        int r = remount_imagefs(true);

        if (r < 0)
                return r;
        return finish_state_write(kos_boot_state_consume_try(imagefs_for_state, id, ret_left));
}

/* Records a boot whose hash-tree components are checked by their tree alone
 * as unconfirmed, before it happens (docs/format.md, "Boot counting"). */
static int record_unconfirmed(const uint8_t id[static KOS_SHA256_LEN], void *userdata) {
        int r = remount_imagefs(true);

        if (r < 0)
                return r;
        return finish_state_write(kos_boot_state_set_unconfirmed(imagefs_for_state, id));
}

/* Which check each component got: sha256 of every byte, or the dm-verity
 * tree up to the signed root hash (the data then checked by dm-verity as
 * it is read, restarting on a corrupt block). */
static void log_checks(const struct kos_candidate *c) {
        size_t n_tree = 0;

        for (size_t i = 0; i < c->n_checks; i++)
                n_tree += c->checks[i] == KOS_VERIFY_HASH_TREE;
        if (n_tree)
                early_log("manifest %s: %zu of %zu components checked by their dm-verity hash tree; this boot is "
                          "recorded as unconfirmed until Node Manager confirms it", c->name, n_tree, c->n_checks);
        if (c->full_check_why[0])
                early_log("manifest %s: hash-tree components checked with full sha256: %s", c->name,
                          c->full_check_why);
}

static void log_selection(const struct kos_selection *s, double seconds) {
        char id[KOS_SHA256_HEX_LEN + 1], signer[KOS_KEY_ID_HEX_LEN + 1];

        early_log("rollback floor: security_version %lu (%s)%s%s", (unsigned long)s->floor.value,
                  kos_floor_source_to_string(s->floor.source), s->floor.warning[0] ? "; WARNING: " : "",
                  s->floor.warning);
        if (s->active_error < 0)
                early_log("active list unreadable: %s", strerror(-s->active_error));
        for (size_t i = 0; i < s->n_candidates; i++) {
                const struct kos_candidate *c = &s->candidates[i];
                kos_hex_encode(c->id, KOS_SHA256_LEN, id);
                switch (c->verdict) {
                case KOS_VERDICT_VALID:
                        kos_hex_encode(c->signer, KOS_KEY_ID_LEN, signer);
                        /* "bytes verified": what was read (scripts/bench-boot.sh matches it). */
                        early_log("manifest %s: valid, signed by %s, %llu bytes verified in %.3f s", c->name, signer,
                                  (unsigned long long)c->hashed_bytes, (double)c->elapsed_ns / 1e9);
                        log_checks(c);
                        if (c->on_trial)
                                early_log("manifest %s: on trial, this boot recorded, %u tries left after it", c->name,
                                          c->tries_left);
                        break;
                case KOS_VERDICT_REJECTED:
                        early_log("manifest %s: rejected: %s: %s", c->name, kos_reason_to_string(c->reason), c->detail);
                        if (c->full_check_why[0])
                                early_log("manifest %s: hash-tree components were checked with full sha256: %s",
                                          c->name, c->full_check_why);
                        break;
                case KOS_VERDICT_SKIPPED:
                        early_log("manifest %s: skipped", c->name);
                        break;
                }
        }
        early_log("selection took %.3f s", seconds);
}

/* Whether this boot extends PCR 15 with the verified-boot marker: decided
 * once, before any handoff is built, so that the handoff's kos.tpm_marker=
 * says what happens (docs/tpm.md, "Sealed keys"): with it, the System Kernel
 * extends the leave event or stops. Any TPM device counts, even one that
 * fails to open: the marker may still land, and the leave must follow. */
static bool tpm_marker;

static void probe_tpm_marker(void) {
        struct kos_tpm t;

        tpm_marker = kos_tpm_open(&t) != -ENODEV;
        kos_tpm_close(&t);
}

/* Measured boot (docs/tpm.md): extends KOS_TPM_PCR with the manifest about
 * to boot, and logs the event; the System Kernel recomputes it from the id
 * it is handed and publishes it in /run/kos/measurements.json. Without a
 * TPM nothing is measured; a failed extend is logged, never fatal: the PCR
 * then does not match, which is what a verifier must see. */
static void measure_manifest(const char *name, const uint8_t id[static KOS_SHA256_LEN]) {
        uint8_t digest[KOS_SHA256_LEN];
        char id_hex[KOS_SHA256_HEX_LEN + 1], digest_hex[KOS_SHA256_HEX_LEN + 1];
        struct kos_tpm t;

        if (!tpm_marker) /* the handoff said no marker: none is extended */
                return;
        int r = kos_tpm_open(&t);
        if (r == -ENODEV)
                return;
        if (r >= 0)
                r = kos_tpm_measure_manifest(&t, id);
        kos_hex_encode(id, KOS_SHA256_LEN, id_hex);
        if (r < 0)
                early_log("measured boot: cannot extend PCR %d of TPM %s: %s (TPM rc 0x%x)", KOS_TPM_PCR, t.path,
                          strerror(-r), t.last_rc);
        else if (kos_tpm_manifest_event_digest(id, digest) >= 0) {
                kos_hex_encode(digest, KOS_SHA256_LEN, digest_hex);
                early_log("measured boot: PCR %d extended with manifest %s id %s (sha256 event digest %s)", KOS_TPM_PCR,
                          name, id_hex, digest_hex);
        }
        kos_tpm_close(&t);
}

/* The signed cmdline, then the handoff (early_handoff_format: the manifest id
 * and the identity of the ImageFS verified here). Nothing from this kernel's
 * own command line is passed on. */
static int build_cmdline(const struct kos_manifest *m, const uint8_t id[static KOS_SHA256_LEN],
                         const struct early_device *dev, char *out, size_t size) {
        struct early_handoff handoff;

        kos_hex_encode(id, KOS_SHA256_LEN, handoff.manifest_id);
        snprintf(handoff.imagefs_uuid, sizeof handoff.imagefs_uuid, "%s", dev->uuid);
        snprintf(handoff.imagefs_partuuid, sizeof handoff.imagefs_partuuid, "%s",
                 dev->partuuid[0] ? dev->partuuid : EARLY_NO_PARTUUID);
        handoff.tpm_marker = tpm_marker;
        return early_handoff_format(m->cmdline, &handoff, out, size);
}

static int kexec_load(int kernel_fd, int initrd_fd, const char *cmdline) {
        if (syscall(SYS_kexec_file_load, kernel_fd, initrd_fd, strlen(cmdline) + 1, cmdline, 0UL) < 0)
                return -errno;
        return 0;
}

/* Loading the System Kernel (kexec_file_load: the kernel copies and hashes
 * the images and checks the bzImage's own signature) takes as long as hashing
 * the components, so it runs on a thread of its own as soon as the kernel
 * and initrd are verified. Nothing is executed before the whole manifest
 * has passed: if it fails, the next candidate's load replaces this one, and
 * main() loads again whenever what was loaded is not what was selected. */
struct preload {
        pthread_t thread;
        bool running;
        uint8_t id[KOS_SHA256_LEN];
        int kernel_fd, initrd_fd; /* our own dups */
        char cmdline[MAX_KEXEC_CMDLINE];
        int result;               /* 0 when loaded, else a negative errno */
        double seconds;
};

static void *preload_run(void *userdata) {
        struct preload *p = userdata;
        double start = early_uptime();

        p->result = kexec_load(p->kernel_fd, p->initrd_fd, p->cmdline);
        p->seconds = early_uptime() - start;
        return NULL;
}

static void preload_join(struct preload *p) {
        if (p->running)
                pthread_join(p->thread, NULL);
        p->running = false;
        kos_closep(&p->kernel_fd);
        kos_closep(&p->initrd_fd);
}

static struct early_device imagefs_device;

static void preload_start(const struct kos_candidate *c, const struct kos_manifest *m, int kernel_fd, int initrd_fd,
                          void *userdata) {
        struct preload *p = userdata;

        preload_join(p);
        p->result = -EAGAIN;
        if (build_cmdline(m, c->id, &imagefs_device, p->cmdline, sizeof p->cmdline) < 0)
                return; /* main() reports it for the selected manifest */
        memcpy(p->id, c->id, KOS_SHA256_LEN);
        p->kernel_fd = fcntl(kernel_fd, F_DUPFD_CLOEXEC, 3);
        p->initrd_fd = fcntl(initrd_fd, F_DUPFD_CLOEXEC, 3);
        if (p->kernel_fd < 0 || p->initrd_fd < 0 || pthread_create(&p->thread, NULL, preload_run, p) != 0) {
                preload_join(p);
                return; /* main() loads it itself */
        }
        p->running = true;
}

/* The Boot Kernel security version of this UKI (kos.bk_security_version=N,
 * signed with its command line: lib/boot/uki.h) goes into PCR 14 before
 * anything else reads the disk, so that keys sealed to it open only under a
 * UKI of that version (docs/tpm.md). Without the parameter (a UKI built
 * before it existed, or without --security-version) nothing is extended
 * and PCR 14 stays zero; a malformed one is treated the same way. */
static bool measure_bk_security_version(struct kos_tpm *t, bool has_version, uint32_t v) {
        char event[KOS_BK_SECURITY_VERSION_EVENT_MAX];
        int r;

        if (!has_version) {
                early_log("Boot Kernel security version: none on the command line (PCR %d not extended)",
                          KOS_BK_SECURITY_VERSION_PCR);
                return false;
        }
        kos_bk_security_version_event(v, event);
        if ((r = kos_bk_measure_security_version(t, v)) < 0) {
                early_log("Boot Kernel security version %" PRIu32 ": cannot extend PCR %d: %s (TPM rc 0x%x)", v,
                          KOS_BK_SECURITY_VERSION_PCR, strerror(-r), t->last_rc);
                return false;
        }
        early_log("Boot Kernel security version %" PRIu32 ": PCR %d extended with \"%s\"", v,
                  KOS_BK_SECURITY_VERSION_PCR, event);
        return true;
}

/* Below the Boot Kernel floor this UKI does not go on: it says why and
 * reboots, so that the firmware starts the next entry of BootOrder (a trial
 * started by BootNext is not retried: the firmware deleted BootNext). When
 * no slot is left at or above the floor, every boot ends here: the device
 * fails closed. */
static void __attribute__((noreturn)) refuse_below_bk_floor(bool has_version, uint32_t v, uint32_t floor) {
        if (has_version)
                early_log("Boot Kernel security version %" PRIu32 " is below the Boot Kernel floor %" PRIu32
                          ": this UKI may not run here; rebooting so the firmware starts the next boot entry", v, floor);
        else
                early_log("this UKI has no Boot Kernel security version and the Boot Kernel floor is %" PRIu32
                          ": it may not run here; rebooting so the firmware starts the next boot entry", floor);
        sync();
        sleep(3);
        reboot(RB_AUTOBOOT);
        for (;;)
                pause();
}

/* PCR 14 first, then the Boot Kernel floor (docs/tpm.md, "The Boot Kernel
 * floor"), provisioned here like the manifest floor; a TPM whose counter
 * cannot be used boots nothing. Without a TPM there is no floor. */
static void check_boot_kernel(void) {
        char message[320] = "", done[320] = "";
        struct kos_tpm t;
        uint32_t v = 0, floor = 0;
        int r = kos_bk_security_version_from_cmdline(early_cmdline_raw(), &v);
        bool has_version = r >= 0;

        if (r < 0 && r != -ENOENT)
                early_log("Boot Kernel security version: malformed " KOS_BK_SECURITY_VERSION_PARAM " (taken as none)");
        if ((r = kos_tpm_open(&t)) == -ENODEV) {
                if (has_version)
                        early_log("Boot Kernel security version %" PRIu32 " (no TPM: no PCR 14, no Boot Kernel floor)", v);
                else
                        early_log("Boot Kernel security version: none (no TPM: no PCR 14, no Boot Kernel floor)");
                return;
        }
        if (r < 0) {
                early_log("the TPM cannot be opened: %s; booting nothing", strerror(-r));
                fail_boot();
        }
        measure_bk_security_version(&t, has_version, v);
        if ((r = kos_tpm_bk_floor_provision(&t, done, sizeof done)) < 0 ||
            (r = kos_tpm_bk_floor_read(&t, &floor, message, sizeof message)) < 0) {
                early_log("the Boot Kernel floor NV 0x%08x cannot be used: %s; booting nothing (docs/tpm.md)",
                          KOS_TPM_BK_FLOOR_INDEX, done[0] && !message[0] ? done : message);
                fail_boot();
        }
        kos_tpm_close(&t);
        if (has_version ? v < floor : floor > 0)
                refuse_below_bk_floor(has_version, v, floor);
        early_log("Boot Kernel floor NV 0x%08x holds %" PRIu32 "%s%s", KOS_TPM_BK_FLOOR_INDEX, floor, done[0] ? "; " : "",
                  done);
}

int main(void) {
        struct kos_keyring ring;
        struct kos_imagefs img = KOS_IMAGEFS_NULL;
        struct kos_selection s;
        struct rusage usage;
        char error[512], cmdline[MAX_KEXEC_CMDLINE];
        double t;
        int r;

        early_log_init("kos-boot");
        if ((r = early_mount_api_filesystems()) < 0)
                early_log("cannot mount /proc, /sys or /dev: %s", strerror(-r));
        early_log("Boot Kernel init started (cycles %llu)", (unsigned long long)early_cycles());
        if (early_cmdline_load() < 0)
                early_log("cannot read /proc/cmdline; using defaults");

        arm_watchdog();
        load_modules();
        check_boot_kernel();
        r = kos_rollback_tpm_prepare(error, sizeof error);
        early_log("rollback floor: %s", error);
        /* A TPM whose counter cannot be used is tampering (or a failing
         * TPM): never the ImageFS floor alone, which root can rewrite. */
        if (r < 0 && r != -ENODEV) {
                early_log("the TPM's rollback floor cannot be trusted: booting nothing (docs/tpm.md, \"Refusals\")");
                fail_boot();
        }
        if (r < 0 && early_cmdline_get("kos.tpm") && strcmp(early_cmdline_get("kos.tpm"), "required") == 0) {
                early_log("kos.tpm=required and the TPM's rollback floor cannot be used");
                fail_boot();
        }

        struct kos_error keyring_error = KOS_ERROR_NULL;
        if (kos_keyring_load(KOS_KEYRING_DIR, &ring, &keyring_error) < 0) {
                early_log("%s", keyring_error.msg);
                fail_boot();
        }
        early_log("keyring: %zu trusted key(s)", ring.n_keys);
        if (ring.n_revocation_keys > 0)
                early_log("keyring: %zu revocation key(s): manifests need a fresh revocation.json", ring.n_revocation_keys);
        probe_tpm_marker();

        if (mount_imagefs(&imagefs_device) < 0 || kos_imagefs_open(IMAGEFS_MOUNT, &img) < 0) {
                early_log("the ImageFS is missing or unusable");
                fail_boot();
        }

        t = early_uptime();
        imagefs_for_state = &img;
        struct preload preload = {.kernel_fd = -1, .initrd_fd = -1, .result = -EAGAIN};
        struct kos_select_options options = {
                .capture_boot_files = true,
                .consume_try = consume_try,
                .record_unconfirmed = record_unconfirmed,
                .boot_files_verified = preload_start,
                .boot_files_userdata = &preload,
        };
        r = kos_select(&img, &ring, &options, &s);
        if (r == -ENOTRECOVERABLE) {
                early_log("rollback floor: %s", s.floor.tpm);
                fail_boot();
        }
        if (r < 0) {
                early_log("selection failed: %s", strerror(-r));
                fail_boot();
        }
        log_selection(&s, early_uptime() - t);
        kos_imagefs_close(&img);
        preload_join(&preload);
        if (s.selected < 0) {
                if (preload.result == 0) /* a rejected candidate's kernel: never run it */
                        (void)syscall(SYS_kexec_file_load, -1, -1, 0UL, NULL, (unsigned long)KEXEC_FILE_UNLOAD);
                early_log("no valid manifest among %zu in active", s.n_candidates);
                fail_boot();
        }
        const uint8_t *id = s.candidates[s.selected].id;
        if ((r = build_cmdline(s.manifest, id, &imagefs_device, cmdline, sizeof cmdline)) < 0) {
                if (r == -E2BIG)
                        early_log("manifest %s: its cmdline is too long for the kernel", s.manifest->name);
                else
                        early_log("the ImageFS %s has no usable filesystem UUID (\"%s\") to hand on", imagefs_device.path,
                                  imagefs_device.uuid);
                fail_boot();
        }
        early_log("booting manifest %s version %llu", s.manifest->name, (unsigned long long)s.manifest->version);
        early_log("System Kernel command line: %s", cmdline);
        getrusage(RUSAGE_SELF, &usage);
        if (preload.result == 0 && memcmp(preload.id, id, KOS_SHA256_LEN) == 0 && strcmp(preload.cmdline, cmdline) == 0)
                early_log("System Kernel loaded by kexec in %.3f s, alongside verification; peak memory of this "
                          "init %ld KiB", preload.seconds, usage.ru_maxrss);
        else {
                t = early_uptime();
                if ((r = kexec_load(s.kernel_fd, s.initrd_fd, cmdline)) < 0) {
                        early_log("kexec_file_load failed: %s", strerror(-r));
                        fail_boot();
                }
                getrusage(RUSAGE_SELF, &usage);
                early_log("System Kernel loaded by kexec in %.3f s; peak memory of this init %ld KiB",
                          early_uptime() - t, usage.ru_maxrss);
        }
        umount(IMAGEFS_MOUNT);
        measure_manifest(s.manifest->name, id);
        sync();
        early_log("jumping to the System Kernel (cycles %llu)", (unsigned long long)early_cycles());
        reboot(LINUX_REBOOT_CMD_KEXEC);
        early_log("kexec reboot failed: %s", strerror(errno));
        fail_boot();
}
