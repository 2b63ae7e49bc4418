/* SPDX-License-Identifier: MIT */
/* The DataFS's secret off the TPM's side (docs/system-kernel.md, "The
 * DataFS"): the signed cmdline's mode, the seal and unseal of the secret,
 * the key slot's passphrase and the LUKS2 token that carries the sealed
 * object. No libcryptsetup here: the unit tests and the fuzzer run it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kos-error.h"
#include "tpm-policy.h"
#include "tpm-seal.h"

#define DATAFS_TOKEN_TYPE "systemd-tpm2"
#define DATAFS_SCHEME_SIGNED_POLICY "signed-policy"
#define DATAFS_SECRET_LEN 64
/* The sealed PCRs: Secure Boot's PCR 7 and the marker's PCR 15 (docs/tpm.md). */
#define DATAFS_SEAL_PCRS ((1u << 7) | (1u << KOS_TPM_SEAL_PCR))
#define DATAFS_TOKEN_MAX 8192

enum datafs_mode { DATAFS_MODE_PLAIN, DATAFS_MODE_LUKS2 };

/* kos.datafs= of the signed cmdline: NULL or "plain" (the default), "luks2";
 * -EINVAL for anything else. */
int datafs_mode_parse(const char *value, enum datafs_mode *ret);

/* The DataFS secret sealed in the TPM, in one of the two schemes of
 * docs/tpm.md: signed policies (TPM2_PolicyAuthorize with the vendor's
 * policy key, unsealed in a salted session: a db/dbx update or a new Boot
 * Kernel needs only a new signature), or, on a device whose initrd carries
 * no policy key or whose release has no signed policy that opens it yet,
 * PolicyPCR over DATAFS_SEAL_PCRS (PCR 7 as it is now, PCR 15 at the
 * marker), migrated to signed policies at the first boot that has them. */
struct datafs_sealed {
        bool authorized;
        struct kos_sealed_key pcr;               /* !authorized */
        struct kos_authorized_key signed_policy; /* authorized */
};

/* The one place the DataFS secret meets the TPM. With policy_key and policy
 * (both or neither): sealed to the signed policies, and unsealed again with
 * policy before it is handed back (kos_tpm_reseal_authorized(): a secret
 * the release's signed policy does not open is never written); without
 * them: PolicyPCR with values. */
int datafs_seal_key(struct kos_tpm *t, const uint8_t secret[static DATAFS_SECRET_LEN],
                    const uint8_t values[24][KOS_SHA256_LEN], const struct kos_tpm_ecc_point *policy_key,
                    const struct kos_signed_policy *policy, struct datafs_sealed *ret, struct kos_error *ret_error);
/* policy_key and policy are needed for an authorized k only (NULL: such a
 * key stays shut, -ENOKEY with the reason in error). */
int datafs_unseal_key(struct kos_tpm *t, const struct datafs_sealed *k, const struct kos_tpm_ecc_point *policy_key,
                      const struct kos_signed_policy *policy, uint8_t ret[static DATAFS_SECRET_LEN],
                      struct kos_error *ret_error);

/* The token's JSON (systemd-tpm2 layout plus kos-pcr-values and
 * kos-generation; a signed-policy key says "kos-scheme": "signed-policy",
 * its tpm2-blob is the KOSSEAL2 bytes and its tpm2-pcrs is empty: the PCRs
 * are the signed policy's) for a sealed key, its key slot and the generation it was
 * made at, and back: 0, or -EBADMSG for a token that is not one of ours
 * (untrusted: it is read from the disk). */
int datafs_token_format(const struct datafs_sealed *k, int keyslot, uint64_t generation, char *buf, size_t size);
int datafs_token_parse(const char *untrusted_json, struct datafs_sealed *ret, int *ret_keyslot,
                       uint64_t *ret_generation);

/* The key slot's passphrase: base64(HMAC-SHA256(secret, "kos-datafs-v1" ||
 * generation as 8 bytes big-endian)), 44 characters; the generation is the
 * TPM counter a factory reset raises (lib/system/datafs-generation.h). The
 * length, or -EIO. (systemd-cryptsetup uses base64(secret) itself: the one
 * step where KOS differs, docs/tpm.md.) */
#define DATAFS_PASSPHRASE_LABEL "kos-datafs-v1"
#define DATAFS_PASSPHRASE_MAX 64
int datafs_passphrase(const uint8_t secret[static DATAFS_SECRET_LEN], uint64_t generation,
                      char ret[static DATAFS_PASSPHRASE_MAX]);
