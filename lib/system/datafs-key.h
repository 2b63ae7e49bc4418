/* SPDX-License-Identifier: MIT */
/* The DataFS's secret off the TPM's side (docs/system-kernel.md, "The
 * DataFS"): the signed cmdline's mode, the seal and unseal of the secret,
 * the key slot's passphrase and the LUKS2 token that carries the sealed
 * object. No libcryptsetup here: the unit tests and the fuzzer run it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tpm-seal.h"

#define DATAFS_TOKEN_TYPE "systemd-tpm2"
#define DATAFS_SECRET_LEN 64
/* The sealed PCRs: Secure Boot's PCR 7 and the marker's PCR 15 (docs/tpm.md). */
#define DATAFS_SEAL_PCRS ((1u << 7) | (1u << KOS_TPM_SEAL_PCR))
#define DATAFS_TOKEN_MAX 8192

enum datafs_mode { DATAFS_MODE_PLAIN, DATAFS_MODE_LUKS2 };

/* kos.datafs= of the signed cmdline: NULL or "plain" (the default), "luks2";
 * -EINVAL for anything else. */
int datafs_mode_parse(const char *value, enum datafs_mode *ret);

/* The one place the DataFS secret meets the TPM: today PolicyPCR over
 * DATAFS_SEAL_PCRS with values (PCR 7 as it is now, PCR 15 at the marker);
 * a signed policy (PolicyAuthorize) later changes only these two. */
int datafs_seal_key(struct kos_tpm *t, const uint8_t secret[static DATAFS_SECRET_LEN],
                    const uint8_t values[24][KOS_SHA256_LEN], struct kos_sealed_key *ret, char *error, size_t error_size);
int datafs_unseal_key(struct kos_tpm *t, const struct kos_sealed_key *k, uint8_t ret[static DATAFS_SECRET_LEN],
                      char *error, size_t error_size);

/* The token's JSON (systemd-tpm2 layout plus kos-pcr-values and
 * kos-generation) for a sealed key, its key slot and the generation it was
 * made at, and back: 0, or -EBADMSG for a token that is not one of ours
 * (untrusted: it is read from the disk). */
int datafs_token_format(const struct kos_sealed_key *k, int keyslot, uint64_t generation, char *buf, size_t size);
int datafs_token_parse(const char *untrusted_json, struct kos_sealed_key *ret, int *ret_keyslot,
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
