/* SPDX-License-Identifier: MIT */
/* Where the System Kernel's initrd finds the key of an encrypted component.
 * A provider is a lookup by key id; they are asked in order, and the first
 * that knows the id answers (a key it cannot give stops the boot):
 *   1. the TPM provider: the ImageFS's sealed-keys/<id>, a TPM object sealed
 *      to the verified chain (lib/system/tpm-seal.h, docs/tpm.md "Sealed keys");
 *   2. the development provider: /etc/kos/keys/<id> in the initrd, which is
 *      as secret as the disk: development only, and it says so on the
 *      console. */
#pragma once

#include "kos-error.h"
#include "tpm-policy.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KOS_KEY_MAX 4096

struct kos_key_provider {
        const char *name;
        const char *short_name; /* for failure messages */
        /* 0 with the key in ret (malloc'd), -ENOKEY when the id is unknown,
         * another negative errno with the reason in error. */
        int (*lookup)(const char *key_id, uint8_t **ret, size_t *ret_len, struct kos_error *ret_error);
        bool development; /* warn on the console whenever it gives a key */
};

extern const struct kos_key_provider kos_key_provider_tpm;
extern const struct kos_key_provider kos_key_provider_initrd;

/* The ImageFS the TPM provider reads sealed-keys/<id> from, by its root
 * directory fd (borrowed; -1: none). */
void kos_key_provider_tpm_set_imagefs(int imagefs_root_fd);
/* The vendor's policy key for signed PCR policies (default
 * KOS_TPM_POLICY_KEY_PATH in the initrd; tests point elsewhere). */
void kos_key_provider_tpm_set_policy_key(const char *path);
/* What signed policies need: the vendor's policy key from the initrd and the
 * release's signed policy (KOS_TPM_POLICY_FILE) from the ImageFS set above.
 * 0, or -ENOENT (either is absent) or another negative errno, with the
 * reason in error. The DataFS's key uses them too (system/datafs.c). */
int kos_key_provider_tpm_read_policy(struct kos_tpm_ecc_point *ret_key, struct kos_signed_policy *ret_policy,
                                     struct kos_error *ret_error);
/* Keys sealed the old way (PolicyPCR) that the TPM provider opened and
 * sealed again to the signed policies (docs/tpm.md, "Migrating PolicyPCR
 * keys"): writes them over their files beneath the ImageFS mounted at
 * imagefs_mount (remounted read-write for it, then read-only again).
 * 0 (ret_message says what, "" when nothing) or a negative errno. */
int kos_key_provider_tpm_write_migrated(const char *imagefs_mount, char *ret_message, size_t message_size);
/* How many keys the TPM provider has unsealed in this process. */
unsigned kos_key_provider_tpm_unsealed(void);

/* Tries each provider of the list in order; *ret_provider names the one that
 * answered (or the last asked), error says why it could not give the key. */
int kos_key_lookup(const struct kos_key_provider *const *providers, const char *key_id, uint8_t **ret, size_t *ret_len,
                   const struct kos_key_provider **ret_provider, struct kos_error *ret_error);

/* The leave event (docs/tpm.md, "Sealed keys"): what the System Kernel does
 * once its components are open, given whether the Boot Kernel's handoff
 * says it extended PCR 15 with the verified-boot marker, the result of
 * extending the leave event (0, -ENODEV when this initrd finds no TPM, or
 * another negative errno) and how many keys were unsealed. */
enum kos_leave_verdict {
        KOS_LEAVE_EXTENDED, /* PCR 15 is past the marker: nothing sealed opens again */
        KOS_LEAVE_NO_TPM,   /* no TPM here and no marker handed on: nothing to shut */
        KOS_LEAVE_WARN,     /* not extended, but PCR 15 never held the marker and no key was given out */
        KOS_LEAVE_STOP,     /* not extended, and something sealed could open later: stop the boot */
};

enum kos_leave_verdict kos_leave_verdict(bool marker_handed_on, int extend_result, unsigned unsealed);
