/* SPDX-License-Identifier: MIT */
/* The Boot Kernel's two slots on the ESP (docs/trust-chain.md, "Boot Kernel
 * updates"): \EFI\KOS\SLOT-A.EFI and SLOT-B.EFI, one UEFI boot entry each
 * (Boot4B0A, Boot4B0B), BootOrder naming the good slot first, and a new UKI
 * tried once through BootNext, which the firmware deletes before it starts
 * the entry: a trial that panics, finds nothing valid or hangs (watchdog)
 * comes back to BootOrder's slot by itself.
 *
 * Everything takes directory fds (the efivarfs mount, the mounted ESP), so
 * the unit tests run it on plain directories; Node Manager passes
 * /sys/firmware/efi/efivars and its mount of the ESP. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hash.h"
#include "util.h"

#define KOS_BK_SLOTS 2
#define KOS_EFI_GLOBAL_GUID "8be4df61-93ca-11d2-aa0d-00e098032b8c"
/* NON_VOLATILE | BOOTSERVICE_ACCESS | RUNTIME_ACCESS */
#define KOS_EFI_VARIABLE_ATTRIBUTES 0x7u
#define KOS_EFI_LOAD_OPTION_ACTIVE 0x1u
/* Boot4B0A and Boot4B0B: "K" and the slot letter, so a person reading
 * efibootmgr's list sees whose they are. */
#define KOS_BK_SLOT_BOOT_NUMBER(slot) ((uint16_t)(0x4B0Au + (slot)))
#define KOS_BK_SLOT_DESCRIPTION_PREFIX "KOS Boot Kernel slot "
#define KOS_EFI_VARIABLE_MAX 4096
#define KOS_EFI_BOOT_ORDER_MAX 128
#define KOS_BK_UKI_MAX (UINT64_C(256) << 20)

/* Where the ESP is on its disk, for the HD() node of a boot entry
 * (UEFI 2.10, 10.3.5.1): GPT partition number, start and size in logical
 * blocks, and the partition's unique GUID as it is on disk (mixed endian). */
struct kos_esp_partition {
        uint32_t number;
        uint64_t start_lba, size_lba;
        uint8_t guid[16];
};

/* "SLOT-A.EFI" / "SLOT-B.EFI" and their firmware paths. */
const char *kos_bk_slot_file(unsigned slot);
char kos_bk_slot_letter(unsigned slot);

/* --- EFI_LOAD_OPTION (UEFI 2.10, 3.1.3): attributes (ACTIVE), the device
 * path's length, the description in UCS-2 with its NUL, then
 * HD(number, GPT, guid, start, size)/File(\EFI\KOS\SLOT-X.EFI)/End.
 * Returns the length written, or -ENOBUFS. */
_kos_must_check_ int kos_bk_slot_load_option(unsigned slot, const struct kos_esp_partition *esp, uint8_t *buf,
                                             size_t size);
/* Parses a GUID "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" (either case) into
 * its on-disk bytes (the first three fields little endian). */
_kos_must_check_ int kos_guid_parse(const char *text, uint8_t ret[static 16]);

/* --- Variables through efivarfs (Documentation/filesystems/efivarfs.rst):
 * a file NAME-GUID holding 4 bytes of attributes, then the data. A write
 * is one write() of both; the kernel hands it to SetVariable(). */
_kos_must_check_ int kos_efivar_read(int efivars_fd, const char *name, uint8_t *data, size_t cap, size_t *ret_len);
_kos_must_check_ int kos_efivar_write(int efivars_fd, const char *name, const void *data, size_t len);
/* The write itself, to the efivarfs file FILE (NAME-GUID) with ATTRIBUTES:
 * what kos_efivar_write() does with KOS_EFI_VARIABLE_ATTRIBUTES, and the
 * dbx append (lib/device/dbx.h) with APPEND_WRITE and a longer .auth. */
_kos_must_check_ int kos_efivar_write_file(int efivars_fd, const char *file, uint32_t attributes, const void *data,
                                           size_t len);
_kos_must_check_ int kos_efivar_delete(int efivars_fd, const char *name);
/* BootCurrent / BootNext (one UINT16): -ENOENT when unset. */
_kos_must_check_ int kos_efivar_read_u16(int efivars_fd, const char *name, uint16_t *ret);
_kos_must_check_ int kos_efi_boot_order_read(int efivars_fd, uint16_t *ret, size_t cap, size_t *ret_n);
_kos_must_check_ int kos_efi_boot_order_write(int efivars_fd, const uint16_t *order, size_t n);

/* --- The slots' state, read once. */
enum kos_bk_slot_state {
        KOS_BK_SLOT_EMPTY,  /* no file */
        KOS_BK_SLOT_GOOD,   /* BootOrder's first entry: the default */
        KOS_BK_SLOT_TRIAL,  /* BootNext names it: the next boot tries it once */
        KOS_BK_SLOT_BAD,    /* it was tried (SLOT-X.TRIED names its sha256) and the device came back without it */
        KOS_BK_SLOT_IDLE,   /* a file, neither of the above */
        _KOS_BK_SLOT_STATE_MAX,
};
const char *kos_bk_slot_state_to_string(enum kos_bk_slot_state s);

struct kos_bk_slot {
        bool present;
        uint8_t sha256[KOS_SHA256_LEN];
        uint64_t size;
        bool has_security_version;
        uint32_t security_version;
        bool tried; /* SLOT-X.TRIED names this sha256 */
        enum kos_bk_slot_state state;
};

struct kos_bk_slots {
        struct kos_bk_slot slot[KOS_BK_SLOTS];
        int booted;  /* BootCurrent's slot, or -1 (the removable path, another entry, no EFI) */
        int good;    /* BootOrder's first entry's slot, or -1 */
        int next;    /* BootNext's slot, or -1 */
        bool entries[KOS_BK_SLOTS]; /* Boot4B0A / Boot4B0B exist */
};

/* Reads both slot files (hash, security version), SLOT-X.TRIED, BootCurrent,
 * BootNext, BootOrder and the two entries. esp_fd: the ESP's root. */
_kos_must_check_ int kos_bk_slots_load(int esp_fd, int efivars_fd, struct kos_bk_slots *ret);

/* Writes the UKI at src_fd (size bytes, which must hash to sha256) into
 * slot's file, power-cut safe on vfat (docs/trust-chain.md, "Why each step is
 * safe on vfat"): EFI\KOS\SLOT-X.TMP created, written while hashed, fsync,
 * renamed over SLOT-X.EFI, the directory fsynced. A hash that differs:
 * -EBADMSG, the temporary file removed, the slot untouched. */
_kos_must_check_ int kos_bk_slot_write(int esp_fd, unsigned slot, int src_fd, uint64_t size,
                                       const uint8_t sha256[static KOS_SHA256_LEN]);

/* Copies slot's UKI (the one just blessed) to the removable path
 * \EFI\BOOT\BOOTX64.EFI the same way, so that a firmware that lost its
 * variables starts a UKI at or above the floor. */
_kos_must_check_ int kos_bk_removable_path_write(int esp_fd, unsigned slot);

/* The trial of the UKI now in slot: its boot entry is (re)written, BootNext
 * names it, then SLOT-X.TRIED records its sha256 (so a trial that never
 * comes back is known as bad, not tried again). Killed anywhere, the slot
 * is idle (tried again by the next start) or on trial, never bad untried. */
_kos_must_check_ int kos_bk_slot_start_trial(int esp_fd, int efivars_fd, unsigned slot, const struct kos_esp_partition *esp,
                                             const uint8_t sha256[static KOS_SHA256_LEN]);

/* Makes slot the default: its SLOT-X.TRIED removed (its trial passed), its
 * entry (re)written, then BootOrder with it first, the other slot's entry
 * second when it exists, then every other entry as it was. One
 * SetVariable: the old or the new order, never none. */
_kos_must_check_ int kos_bk_slot_make_default(int esp_fd, int efivars_fd, unsigned slot, const struct kos_esp_partition *esp,
                                              const struct kos_bk_slots *s);
