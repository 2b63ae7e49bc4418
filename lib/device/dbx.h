/* SPDX-License-Identifier: MIT */
/* dbx updates, checked on the device before they are applied: a KEK-signed
 * append to the UEFI forbidden-signature database (an .auth file as
 * efitools' sign-efi-sig-list -a writes it: EFI_VARIABLE_AUTHENTICATION_2,
 * then EFI_SIGNATURE_LISTs) must not revoke a Boot Kernel UKI the device
 * needs to boot: not its Authenticode SHA-256 (EFI_CERT_SHA256_GUID) and not
 * a certificate of its signature (EFI_CERT_X509_GUID). The firmware would
 * refuse that UKI on the next boot ("Access Denied") and the device would
 * not come back. UEFI 2.10, 32.4 (signature database) and 8.2.2 (time-based
 * authenticated variables); PE/COFF 4.1 (Authenticode hash). See
 * docs/trust-chain.md ("dbx updates"). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hash.h"
#include "kos-error.h"
#include "util.h"

#define KOS_DBX_UPDATE_MAX (1024 * 1024)   /* an .auth larger than this is refused */
#define KOS_UKI_MAX (512 * 1024 * 1024)    /* a PE image larger than this is refused */
#define KOS_UKI_MAX_CERTS 8

/* What the firmware matches a UKI by: its Authenticode hash and the DER
 * certificates of its signature(s). */
struct kos_uki_identity {
        uint8_t authenticode_sha256[KOS_SHA256_LEN];
        size_t n_certs;
        uint8_t *certs[KOS_UKI_MAX_CERTS]; /* DER, owned */
        size_t cert_lens[KOS_UKI_MAX_CERTS];
};

/* The Authenticode SHA-256 of a PE image, as EDK2's DxeImageVerificationLib
 * computes it (HashPeImage): the headers without CheckSum and the
 * certificate-table entry, the sections in file order, then what follows
 * them save the certificate table. -EBADMSG for a malformed image. */
_kos_must_check_ int kos_authenticode_sha256(const uint8_t *untrusted_pe, size_t len,
                                             uint8_t ret[static KOS_SHA256_LEN]);

/* The hash and the signing certificates (every certificate carried in each
 * PKCS#7 of the certificate table). -EBADMSG for a malformed image or
 * signature, -ENOKEY for an unsigned one. Release with kos_uki_identity_done(). */
_kos_must_check_ int kos_uki_identity_of(const uint8_t *untrusted_pe, size_t len, struct kos_uki_identity *ret);
void kos_uki_identity_done(struct kos_uki_identity *id);

enum kos_dbx_verdict {
        KOS_DBX_SAFE,               /* revokes nothing the device needs */
        KOS_DBX_REVOKES_UKI_HASH,   /* an EFI_CERT_SHA256 entry is a needed UKI's Authenticode hash */
        KOS_DBX_REVOKES_UKI_SIGNER, /* an EFI_CERT_X509 entry is a certificate of a needed UKI's signature */
        KOS_DBX_UNKNOWN_TYPE,       /* an entry type this check cannot compare (fail closed) */
        KOS_DBX_MALFORMED,          /* not an authentication header followed by signature lists */
        _KOS_DBX_VERDICT_MAX,
};

const char *kos_dbx_verdict_to_string(enum kos_dbx_verdict v);

/* The signature lists of an .auth file (EFI_VARIABLE_AUTHENTICATION_2:
 * 16-byte EFI_TIME, then a WIN_CERTIFICATE_UEFI_GUID of type
 * EFI_CERT_TYPE_PKCS7_GUID of its own dwLength). -EBADMSG otherwise. */
_kos_must_check_ int kos_dbx_auth_payload(const uint8_t *untrusted_auth, size_t len, const uint8_t **ret_lists,
                                          size_t *ret_len);

/* Checks every entry of the signature lists against every needed UKI.
 * Refused: ret_error says which entry and which UKI (index into needed),
 * code -EPERM (REVOKES_*) or -EBADMSG (MALFORMED, UNKNOWN_TYPE). SAFE: code 0
 * and the message says what was checked (a note, not a failure). */
_kos_must_check_ enum kos_dbx_verdict kos_dbx_check_signature_lists(const uint8_t *untrusted_lists, size_t len,
                                                                    const struct kos_uki_identity *needed,
                                                                    size_t n_needed, struct kos_error *ret_error);

/* The same for a whole .auth file: the device-side gate before it is
 * written to efivarfs. */
_kos_must_check_ enum kos_dbx_verdict kos_dbx_check_update(const uint8_t *untrusted_auth, size_t len,
                                                           const struct kos_uki_identity *needed, size_t n_needed,
                                                           struct kos_error *ret_error);

/* --- Applying an update on the device (Node Manager, `kos dbx apply`). */

/* dbx in efivarfs: EFI_IMAGE_SECURITY_DATABASE_GUID. */
#define KOS_DBX_EFIVAR "dbx-d719b2cb-3d3a-4596-a3bc-dad00e67656f"
/* NON_VOLATILE | BOOTSERVICE_ACCESS | RUNTIME_ACCESS |
 * TIME_BASED_AUTHENTICATED_WRITE_ACCESS | APPEND_WRITE (UEFI 2.10, 8.2). */
#define KOS_DBX_APPEND_ATTRIBUTES 0x67u
#define KOS_DBX_VARIABLE_MAX (1024 * 1024) /* a dbx larger than this is not read */

/* Whether every entry of the signature lists `lists` (its signature type and
 * data; the owner GUID is not compared) is already in `dbx`, the variable's
 * data as efivarfs shows it (signature lists, no attributes). false for
 * malformed input on either side. */
bool kos_dbx_lists_contain(const uint8_t *untrusted_dbx, size_t dbx_len, const uint8_t *untrusted_lists,
                           size_t lists_len);

enum kos_dbx_apply_result {
        KOS_DBX_APPLY_APPENDED, /* written: the firmware accepted the KEK signature and appended */
        KOS_DBX_APPLY_PRESENT,  /* dbx holds every entry already: nothing written */
        KOS_DBX_APPLY_REFUSED,  /* the check refused it (*ret_verdict, ret_error): nothing written */
        _KOS_DBX_APPLY_RESULT_MAX,
};
const char *kos_dbx_apply_result_to_string(enum kos_dbx_apply_result r);

/* The device's dbx update (docs/trust-chain.md, "dbx updates"): nothing
 * to do when dbx (read through efivars_fd) already holds every entry;
 * else kos_dbx_check_update() against the UKIs the device needs (at least
 * one: none is -EINVAL, nothing is guessed), then one write() of
 * KOS_DBX_APPEND_ATTRIBUTES and the .auth to KOS_DBX_EFIVAR: the firmware
 * checks the KEK signature and appends. efivarfs marks an existing dbx
 * immutable; the flag is cleared for the write and set again after it.
 * Returns 0 and *ret_result, or a negative errno (the firmware's refusal
 * of the signature comes back from write(): EINVAL or EACCES). */
_kos_must_check_ int kos_dbx_apply_update(int efivars_fd, const uint8_t *untrusted_auth, size_t len,
                                          const struct kos_uki_identity *needed, size_t n_needed,
                                          enum kos_dbx_apply_result *ret_result, enum kos_dbx_verdict *ret_verdict,
                                          struct kos_error *ret_error);
