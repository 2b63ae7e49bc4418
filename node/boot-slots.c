/* SPDX-License-Identifier: MIT */
/* The Boot Kernel's slots on the ESP, once a boot is marked good
 * (lib/device/bk-slots.h; docs/trust-chain.md, "Boot Kernel updates"):
 *   1. a slot booted on trial (BootCurrent is a slot that BootOrder does not
 *      name first) is blessed: BootOrder names it first;
 *   2. a device whose firmware has no slot entry yet (first boot from the
 *      removable path) gets slot A as its default;
 *   3. the booted release's Boot Kernel UKI, when it carries one that is in
 *      neither slot, is written to the slot not in use, and BootNext makes
 *      the next boot try it once.
 * Synchronous on the event loop: the UKI is a few tens of MiB and the
 * whole step runs once per boot, after the boot is marked good. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bk-slots.h"
#include "early.h"
#include "kos-error.h"
#include "load.h"
#include "node.h"
#include "tpm.h"

#define EFIVARS_DIR "/sys/firmware/efi/efivars"
#define ESP_MOUNT KOS_RUN_DIR "/esp"
#define ESP_SPEC "LABEL=KOS-ESP"

static unsigned long sysfs_number(const char *dir, const char *file) {
        char path[256], text[32] = "";
        FILE *f;

        snprintf(path, sizeof path, "%s/%s", dir, file);
        if (!(f = fopen(path, "re")))
                return 0;
        if (!fgets(text, sizeof text, f))
                text[0] = '\0';
        fclose(f);
        return strtoul(text, NULL, 10);
}

/* Partition number, start and size from sysfs (512-byte sectors, turned
 * into the disk's logical blocks), the GUID from libblkid's probe. */
static int esp_partition(const struct early_device *dev, struct kos_esp_partition *ret) {
        char dir[128], queue[160];
        const char *name = strrchr(dev->path, '/');

        if (!name || kos_guid_parse(dev->partuuid, ret->guid) < 0)
                return -ENODEV;
        snprintf(dir, sizeof dir, "/sys/class/block/%s", name + 1);
        snprintf(queue, sizeof queue, "%s/../queue", dir);
        unsigned long block = sysfs_number(queue, "logical_block_size");
        if (block < 512 || block % 512 != 0)
                block = 512;
        ret->number = (uint32_t)sysfs_number(dir, "partition");
        ret->start_lba = (uint64_t)sysfs_number(dir, "start") * 512 / block;
        ret->size_lba = (uint64_t)sysfs_number(dir, "size") * 512 / block;
        return ret->number > 0 && ret->size_lba > 0 ? 0 : -ENODEV;
}

struct esp {
        int fd, efivars_fd;
        bool mounted;
        struct kos_esp_partition part;
};

static void esp_close(struct esp *e) {
        kos_closep(&e->fd);
        kos_closep(&e->efivars_fd);
        if (e->mounted && umount2(ESP_MOUNT, 0) < 0) /* umount writes back what is left */
                event("cannot unmount the ESP: %s", strerror(errno));
}

static int esp_open(struct esp *e, struct kos_error *ret_error) {
        struct early_device dev;
        int r;

        *e = (struct esp){.fd = -1, .efivars_fd = -1};
        e->efivars_fd = open(EFIVARS_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (e->efivars_fd < 0 && access("/sys/firmware/efi", F_OK) == 0 &&
            mount("efivarfs", EFIVARS_DIR, "efivarfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) == 0)
                e->efivars_fd = open(EFIVARS_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (e->efivars_fd < 0)
                return kos_error_set(ret_error, -ENOENT, "no EFI variables (%s: %s)", EFIVARS_DIR, strerror(errno));
        if ((r = early_find_device(ESP_SPEC, 0, &dev)) < 0)
                return kos_error_set(ret_error, r, "no ESP (%s): %s", ESP_SPEC, strerror(-r));
        if ((r = esp_partition(&dev, &e->part)) < 0)
                return kos_error_set(ret_error, r, "the ESP %s is not a GPT partition", dev.path);
        if (mkdir(ESP_MOUNT, 0700) < 0 && errno != EEXIST)
                return kos_error_set(ret_error, -errno, "cannot make %s: %s", ESP_MOUNT, strerror(errno));
        if (mount(dev.path, ESP_MOUNT, "vfat", MS_NOSUID | MS_NODEV | MS_NOEXEC, "umask=0077,shortname=mixed") < 0)
                return kos_error_set(ret_error, -errno, "cannot mount the ESP %s: %s", dev.path, strerror(errno));
        e->mounted = true;
        e->fd = open(ESP_MOUNT, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        return e->fd < 0 ? kos_error_set(ret_error, -errno, "cannot open %s: %s", ESP_MOUNT, strerror(errno)) : 0;
}

static int read_bk_floor(uint32_t *ret, struct kos_error *ret_error);

/* What status shows: both slots, which booted, the floor. */
static void remember_slots(struct node *n, const struct kos_bk_slots *s) {
        json_t *slots = json_array();
        struct kos_error error;
        uint32_t floor = 0;
        bool have_floor = read_bk_floor(&floor, &error) >= 0;

        for (unsigned i = 0; slots && i < KOS_BK_SLOTS; i++) {
                char hex[KOS_SHA256_HEX_LEN + 1], letter[2] = {kos_bk_slot_letter(i), 0};
                kos_hex_encode(s->slot[i].sha256, KOS_SHA256_LEN, hex);
                json_array_append_new(slots, json_pack("{s:s, s:s, s:o, s:o, s:b}", "slot", letter, "state",
                                                       kos_bk_slot_state_to_string(s->slot[i].state), "sha256",
                                                       s->slot[i].present ? json_string(hex) : json_null(),
                                                       "security_version",
                                                       s->slot[i].has_security_version
                                                               ? json_integer((json_int_t)s->slot[i].security_version)
                                                               : json_null(),
                                                       "booted", (int)i == s->booted));
        }
        char booted[2] = {s->booted >= 0 ? kos_bk_slot_letter((unsigned)s->booted) : 0, 0};
        json_decref(n->boot_kernel);
        n->boot_kernel = json_pack("{s:o, s:o, s:o}", "slots", slots ? slots : json_null(), "booted_slot",
                                   s->booted >= 0 ? json_string(booted) : json_null(), "floor",
                                   have_floor ? json_integer((json_int_t)floor) : json_null());
}

static void log_slots(const struct kos_bk_slots *s) {
        for (unsigned i = 0; i < KOS_BK_SLOTS; i++) {
                char hex[KOS_SHA256_HEX_LEN + 1] = "-";
                if (s->slot[i].present)
                        kos_hex_encode(s->slot[i].sha256, KOS_SHA256_LEN, hex);
                char version[32] = "none";
                if (s->slot[i].has_security_version)
                        snprintf(version, sizeof version, "%" PRIu32, s->slot[i].security_version);
                early_log("Boot Kernel slot %c: %s, sha256 %.16s, security version %s%s", kos_bk_slot_letter(i),
                          kos_bk_slot_state_to_string(s->slot[i].state), hex, version,
                          (int)i == s->booted ? ", booted" : "");
        }
}

/* The Boot Kernel floor (lib/boot/tpm.h): -ENODEV without a TPM. */
static int read_bk_floor(uint32_t *ret, struct kos_error *ret_error) {
        struct kos_tpm t;
        int r = kos_tpm_open(&t);

        if (r < 0)
                return r == -ENODEV ? r : kos_error_set(ret_error, r, "cannot open the TPM: %s", strerror(-r));
        r = kos_tpm_bk_floor_read(&t, ret, ret_error->msg, sizeof ret_error->msg);
        kos_tpm_close(&t);
        if (r < 0)
                ret_error->code = r;
        return r;
}

/* Raised to the default slot's security version once that slot booted and
 * was marked good, never before: the old slot then refuses to run. Called
 * on every good boot of the default slot, so a cut between BootOrder and
 * the raise is completed by the next one. */
static void raise_bk_floor(const struct kos_bk_slots *s) {
        char why[320] = "";
        struct kos_tpm t;
        uint32_t floor = 0;

        if (s->booted < 0 || s->booted != s->good || !s->slot[s->booted].has_security_version)
                return;
        uint32_t v = s->slot[s->booted].security_version;
        int r = kos_tpm_open(&t);
        if (r == -ENODEV)
                return;
        if (r >= 0 && (r = kos_tpm_bk_floor_read(&t, &floor, why, sizeof why)) >= 0 && floor < v &&
            (r = kos_tpm_bk_floor_raise(&t, v, why, sizeof why)) >= 0)
                event("Boot Kernel floor raised from %" PRIu32 " to %" PRIu32, floor, v);
        if (r < 0)
                event("cannot raise the Boot Kernel floor to %" PRIu32 ": %s", v, why[0] ? why : strerror(-r));
        if (r != -ENODEV)
                kos_tpm_close(&t);
}

/* Step 3: the release's UKI into the slot not in use, then its trial. */
static void install_release_uki(struct node *n, struct esp *e, const struct kos_bk_slots *s,
                                const struct kos_boot_kernel *bk) {
        char hex[KOS_SHA256_HEX_LEN + 1];
        int r;

        kos_hex_encode(bk->blob.sha256, KOS_SHA256_LEN, hex);
        for (unsigned i = 0; i < KOS_BK_SLOTS; i++) {
                if (!s->slot[i].present || !kos_digest_equal(s->slot[i].sha256, bk->blob.sha256))
                        continue;
                if (s->slot[i].state == KOS_BK_SLOT_BAD)
                        event("Boot Kernel %.16s failed its trial in slot %c: not tried again", hex, kos_bk_slot_letter(i));
                else if ((int)i == s->good || (int)i == s->booted || s->slot[i].state == KOS_BK_SLOT_TRIAL)
                        return; /* already the default, running, or waiting for its trial */
                else if ((r = kos_bk_slot_start_trial(e->fd, e->efivars_fd, i, &e->part, bk->blob.sha256)) < 0)
                        event("cannot start the trial of slot %c: %s", kos_bk_slot_letter(i), strerror(-r));
                else
                        event("Boot Kernel slot %c holds %.16s: the next boot tries it once (BootNext)", kos_bk_slot_letter(i), hex);
                return;
        }
        uint32_t floor = 0;
        struct kos_error error = KOS_ERROR_NULL;
        if ((r = read_bk_floor(&floor, &error)) < 0 && r != -ENODEV) {
                event("the Boot Kernel floor cannot be read (%s): Boot Kernel %.16s not installed", error.msg, hex);
                return;
        }
        if (bk->security_version < floor) {
                event("Boot Kernel %.16s has security version %" PRIu32 ", below the Boot Kernel floor %" PRIu32
                      ": not installed", hex, bk->security_version, floor);
                return;
        }
        /* The idle slot: never the one this boot came from, nor the default. */
        int keep = s->good >= 0 ? s->good : s->booted >= 0 ? s->booted : 0;
        unsigned idle = 1 - (unsigned)keep;
        _cleanup_close_ int fd = kos_open_regular_at(n->img.components_fd, hex, O_NOFOLLOW, NULL);
        if (fd < 0) {
                event("the release's Boot Kernel UKI components/%.16s... is not on the ImageFS: %s", hex, strerror(-fd));
                return;
        }
        if ((r = kos_bk_slot_write(e->fd, idle, fd, bk->blob.size, bk->blob.sha256)) < 0) {
                event("cannot write Boot Kernel %.16s to slot %c: %s", hex, kos_bk_slot_letter(idle),
                      r == -EBADMSG ? "its sha256 is not the signed one" : strerror(-r));
                return;
        }
        if ((r = kos_bk_slot_start_trial(e->fd, e->efivars_fd, idle, &e->part, bk->blob.sha256)) < 0)
                event("Boot Kernel %.16s written to slot %c, but its trial cannot start: %s", hex, kos_bk_slot_letter(idle),
                      strerror(-r));
        else
                event("Boot Kernel %.16s (security version %" PRIu32 ") written to slot %c: the next boot tries it once "
                      "(BootNext)", hex, bk->security_version, kos_bk_slot_letter(idle));
}

static void update_slots(struct node *n) {
        _cleanup_manifest_ struct kos_manifest *m = NULL;
        struct kos_candidate c = {0};
        struct kos_bk_slots s;
        struct esp e;
        struct kos_error error;
        int r;

        if ((r = esp_open(&e, &error)) < 0) {
                event("Boot Kernel slots: %s; not updated", error.msg);
                esp_close(&e);
                return;
        }
        if ((r = kos_bk_slots_load(e.fd, e.efivars_fd, &s)) < 0) {
                event("Boot Kernel slots cannot be read: %s", strerror(-r));
                esp_close(&e);
                return;
        }
        if (s.booted >= 0 && s.booted != s.good) {
                if ((r = kos_bk_slot_make_default(e.fd, e.efivars_fd, (unsigned)s.booted, &e.part, &s)) < 0)
                        event("cannot bless Boot Kernel slot %c: %s", kos_bk_slot_letter((unsigned)s.booted), strerror(-r));
                else {
                        event("Boot Kernel slot %c blessed (security version %" PRIu32 "): BootOrder names it first",
                              kos_bk_slot_letter((unsigned)s.booted), s.slot[s.booted].security_version);
                        int w = kos_bk_removable_path_write(e.fd, (unsigned)s.booted);
                        if (w < 0)
                                event("cannot copy slot %c to the removable path: %s", kos_bk_slot_letter((unsigned)s.booted),
                                      strerror(-w));
                        else
                                event("slot %c copied to the removable path \\EFI\\BOOT\\BOOTX64.EFI",
                                      kos_bk_slot_letter((unsigned)s.booted));
                }
        } else if (s.booted < 0 && s.good < 0 && s.slot[0].present) {
                if ((r = kos_bk_slot_make_default(e.fd, e.efivars_fd, 0, &e.part, &s)) < 0)
                        event("cannot make Boot Kernel slot A the default: %s", strerror(-r));
                else
                        event("Boot Kernel slot A is the default now (Boot%04X first in BootOrder)", KOS_BK_SLOT_BOOT_NUMBER(0));
        }
        if (r >= 0 && (r = kos_bk_slots_load(e.fd, e.efivars_fd, &s)) >= 0)
                raise_bk_floor(&s);
        if (r >= 0 && kos_load_manifest_by_id(&n->img, &n->ring, n->id, &c, &m) && m->boot_kernel.present)
                install_release_uki(n, &e, &s, &m->boot_kernel);
        if (r >= 0 && kos_bk_slots_load(e.fd, e.efivars_fd, &s) >= 0) {
                log_slots(&s);
                remember_slots(n, &s);
                if (m && m->dbx_update.present)
                        dbx_update_apply(n, e.fd, e.efivars_fd, &s, &m->dbx_update);
        }
        esp_close(&e);
}

void boot_slots_refresh(struct node *n) {
        struct kos_bk_slots s;
        struct esp e;
        struct kos_error error;

        if (esp_open(&e, &error) >= 0 && kos_bk_slots_load(e.fd, e.efivars_fd, &s) >= 0) {
                if (s.booted >= 0)
                        event("booted from Boot Kernel slot %c (security version %" PRIu32 ")",
                              kos_bk_slot_letter((unsigned)s.booted), s.slot[s.booted].security_version);
                else
                        event("booted from no Boot Kernel slot (the removable path or another boot entry)");
                remember_slots(n, &s);
        }
        esp_close(&e);
}

void boot_slots_after_good(struct node *n) {
        /* The test build of Node Manager (KOS_FAULT_SLOTS_AT=N, lib/boot/util.h)
         * dies at the N-th point of this update, counted alone. */
        kos_fault_points_count("KOS_FAULT_SLOTS_AT");
        update_slots(n);
        kos_fault_points_count("KOS_FAULT_AT");
        early_log("Boot Kernel slots: done");
}
