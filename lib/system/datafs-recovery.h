/* SPDX-License-Identifier: MIT */
/* The DataFS's recovery key slot (docs/system-kernel.md, "Recovery"): at
 * the first format, a random recovery passphrase gets a key slot of its
 * own, and is stored in the LUKS2 header (token "kos-recovery") encrypted
 * to the vendor's recovery certificate with CMS (RFC 5652 EnvelopedData,
 * AES-256-CBC), so that only the vendor's private key recovers it: for a
 * device whose TPM was cleared or replaced. The certificate is
 * KOS_DATAFS_RECOVERY_CERT in the System Kernel's initrd, which the signed
 * manifest covers (kos mkinitrd --recovery-cert). */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "kos-error.h"

#define KOS_DATAFS_RECOVERY_CERT "/etc/kos/recovery.pem"
#define KOS_DATAFS_RECOVERY_TOKEN "kos-recovery"
#define KOS_DATAFS_RECOVERY_KEY_LEN 32 /* random bytes; the passphrase is their 64 hex digits */
#define KOS_DATAFS_RECOVERY_PASS_MAX (2 * KOS_DATAFS_RECOVERY_KEY_LEN + 1)
#define KOS_DATAFS_RECOVERY_CMS_MAX 4096

/* A new recovery passphrase (64 hex digits of getrandom) and its CMS for
 * the certificate in cert_pem_path, as the token's JSON for keyslot: 0, or
 * a negative errno with error (-ENOENT: no certificate). */
int kos_datafs_recovery_make(const char *cert_pem_path, int keyslot, char ret_pass[static KOS_DATAFS_RECOVERY_PASS_MAX],
                             char **ret_token_json, struct kos_error *ret_error);
/* The vendor's side: the CMS of a kos-recovery token's JSON (untrusted)
 * decrypted with its private key (and certificate, which picks the
 * recipient): the passphrase, and the key slot it opens. */
int kos_datafs_recovery_open(const char *untrusted_token_json, const char *key_pem_path, const char *cert_pem_path,
                             char ret_pass[static KOS_DATAFS_RECOVERY_PASS_MAX], int *ret_keyslot,
                             struct kos_error *ret_error);
