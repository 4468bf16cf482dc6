/*
 * luks.c - pass 5: the LUKS header area of an encrypted image (crypt_method
 * 2), checked without any key.
 *
 * The full-disk-encryption extension (validated by extensions.c) points to
 * [crypto_offset, +crypto_length): QEMU refcounts that range, so we claim it
 * as QC_OWN_LUKS.  Inside it QEMU's qcrypto-block-luks writes a LUKS1
 * partition header (592 bytes: magic "LUKS\xba\xbe", version 1, cipher
 * strings, payload offset, key size, digest, uuid, 8 key slots of 48 bytes)
 * followed by the key material.  We check the fields QEMU's
 * qcrypto_block_luks_check_header checks that need no key: magic, version,
 * NUL-terminated strings, iteration counts, key slot states, stripes, and
 * that the key material and the payload offset stay inside the declared
 * area without overlapping the header or each other.  Guest data is
 * encrypted but metadata never is: every other pass runs as usual.
 */
#include "check.h"
#include "../core/reader.h"

#include <stdlib.h>
#include <string.h>

#define LUKS_HDR_LEN 592
#define LUKS_SECTOR 512
#define LUKS_KEY_SLOT_OFFSET 4096 /* first byte the key material may use */
#define LUKS_NUM_SLOTS 8
#define LUKS_SLOT_LEN 48
#define LUKS_SLOTS_AT 208
#define LUKS_STRIPES 4000
#define LUKS_SLOT_ENABLED 0x00AC71F3u
#define LUKS_SLOT_DISABLED 0x0000DEADu
#define LUKS_MAX_KEY_BYTES 512 /* far above any cipher QEMU knows (64) */

static const uint8_t luks_magic[6] = { 'L', 'U', 'K', 'S', 0xba, 0xbe };

struct slot {
	uint32_t active, iterations, key_offset, stripes;
	uint64_t start, len; /* sectors */
};

static bool nul_terminated(struct qc_view v, uint64_t off, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		uint8_t b = 1;
		if (qc_get_u8(v, off + i, &b) && b == 0)
			return true;
	}
	return false;
}

static void check_strings(struct qc_image *img, struct qc_view v, uint64_t base)
{
	static const struct {
		unsigned off;
		const char *what;
	} s[] = { { 8, "cipher name" }, { 40, "cipher mode" }, { 72, "hash spec" } };
	for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++)
		if (!nul_terminated(v, s[i].off, 32))
			qc_report(&img->problems, QC_P_LUKS_STRING_UNTERMINATED,
				  QC_LOC(base + s[i].off), 1,
				  "LUKS %s is not NUL terminated within 32 bytes", s[i].what);
}

static void check_slots(struct qc_image *img, struct qc_view v, uint64_t base, uint32_t key_bytes,
			uint32_t payload, uint64_t area_sectors)
{
	struct qc_problems *ps = &img->problems;
	struct slot sl[LUKS_NUM_SLOTS];
	unsigned enabled = 0;
	uint64_t header_sectors = LUKS_KEY_SLOT_OFFSET / LUKS_SECTOR;
	for (unsigned i = 0; i < LUKS_NUM_SLOTS; i++) {
		uint64_t o = LUKS_SLOTS_AT + (uint64_t)i * LUKS_SLOT_LEN;
		struct slot *s = &sl[i];
		qc_get_be32(v, o, &s->active);
		qc_get_be32(v, o + 4, &s->iterations);
		qc_get_be32(v, o + 40, &s->key_offset);
		qc_get_be32(v, o + 44, &s->stripes);
		/* key material: key_bytes * stripes bytes in sectors, rounded up to
		 * the 4 KiB header alignment (what QEMU reserves per slot) */
		uint64_t bytes = (uint64_t)key_bytes * s->stripes;
		uint64_t sectors = (bytes + LUKS_SECTOR - 1) / LUKS_SECTOR;
		s->len = (sectors + header_sectors - 1) / header_sectors * header_sectors;
		s->start = s->key_offset;
		uint64_t at = base + o;
		if (s->active != LUKS_SLOT_ENABLED && s->active != LUKS_SLOT_DISABLED) {
			qc_report(ps, QC_P_LUKS_KEYSLOT_STATE_INVALID, QC_LOC(at), 1,
				  "LUKS key slot %u state 0x%08x is neither enabled nor disabled", i,
				  s->active);
			s->len = 0;
			continue;
		}
		if (s->active == LUKS_SLOT_ENABLED)
			enabled++;
		if (s->stripes != LUKS_STRIPES) {
			qc_report(ps, QC_P_LUKS_KEYSLOT_STRIPES_INVALID, QC_LOC(at + 44), 1,
				  "LUKS key slot %u has %u stripes (QEMU requires %u)", i, s->stripes,
				  LUKS_STRIPES);
			s->len = 0;
			continue;
		}
		if (s->active == LUKS_SLOT_ENABLED && s->iterations == 0)
			qc_report(ps, QC_P_LUKS_ITERATIONS_ZERO, QC_LOC(at + 4), 1,
				  "LUKS key slot %u iteration count is zero", i);
		if (s->start < header_sectors || s->start + s->len > payload ||
		    s->start + s->len > area_sectors) {
			qc_report(ps, QC_P_LUKS_KEYSLOT_RANGE_INVALID, QC_LOC(at + 40), 1,
				  "LUKS key slot %u material [sector %llu, +%llu) is not between the LUKS header and the payload (sector %u) inside the %llu-sector area",
				  i, (unsigned long long)s->start, (unsigned long long)s->len, payload,
				  (unsigned long long)area_sectors);
			s->len = 0;
		}
	}
	for (unsigned i = 0; i < LUKS_NUM_SLOTS; i++)
		for (unsigned j = i + 1; j < LUKS_NUM_SLOTS; j++)
			if (qc_ranges_overlap(sl[i].start, sl[i].len, sl[j].start, sl[j].len))
				qc_report(ps, QC_P_LUKS_KEYSLOT_OVERLAP,
					  QC_LOC(base + LUKS_SLOTS_AT + (uint64_t)j * LUKS_SLOT_LEN + 40), 1,
					  "LUKS key slots %u and %u overlap", i, j);
	if (!enabled)
		qc_report(ps, QC_P_LUKS_NO_ACTIVE_KEYSLOT, QC_LOC(base + LUKS_SLOTS_AT), 1,
			  "no LUKS key slot is enabled: no passphrase can decrypt the guest data");
}

void qc_pass_luks(struct qc_image *img)
{
	struct qc_extensions *e = &img->ext;
	struct qc_problems *ps = &img->problems;
	if (img->h.crypt_method != 2 || !e->crypto_valid || !img->geometry_ok)
		return;
	uint64_t base = e->crypto_offset;
	if (!qc_claim(img, base, e->crypto_length, QC_OWN_LUKS, 1, QC_LOC(base)))
		return;
	if (e->crypto_length < LUKS_HDR_LEN) {
		qc_report(ps, QC_P_LUKS_AREA_TOO_SMALL, QC_LOC(base), 1,
			  "LUKS area of %llu bytes cannot hold the %u-byte LUKS header",
			  (unsigned long long)e->crypto_length, LUKS_HDR_LEN);
		return;
	}
	uint8_t hdr[LUKS_HDR_LEN];
	long long n = qc_io_read(img->io, hdr, sizeof(hdr), base);
	if (n < 0) {
		qc_abort(img, "I/O error reading the LUKS header at 0x%llx: %s", (unsigned long long)base,
			 strerror((int)-n));
		return;
	}
	struct qc_view v = qc_view_make(hdr, sizeof(hdr)); /* zero filled past EOF */
	if (memcmp(hdr, luks_magic, sizeof(luks_magic)) != 0) {
		qc_report(ps, QC_P_LUKS_MAGIC_INVALID, QC_LOC(base), 1,
			  "no LUKS magic at 0x%llx (found %02x %02x %02x %02x %02x %02x)",
			  (unsigned long long)base, hdr[0], hdr[1], hdr[2], hdr[3], hdr[4], hdr[5]);
		return;
	}
	uint16_t version = 0;
	qc_get_be16(v, 6, &version);
	if (version != 1) {
		qc_report(ps, QC_P_LUKS_VERSION_UNSUPPORTED, QC_LOC(base + 6), 1,
			  "LUKS version %u (QEMU writes and reads version 1)", version);
		return;
	}
	check_strings(img, v, base);
	uint32_t payload = 0, key_bytes = 0, mk_iter = 0;
	qc_get_be32(v, 104, &payload);
	qc_get_be32(v, 108, &key_bytes);
	qc_get_be32(v, 164, &mk_iter);
	uint64_t area_sectors = e->crypto_length / LUKS_SECTOR;
	bool payload_ok = true;
	if (payload < LUKS_KEY_SLOT_OFFSET / LUKS_SECTOR || payload > area_sectors) {
		qc_report(ps, QC_P_LUKS_PAYLOAD_OFFSET_INVALID, QC_LOC(base + 104), 1,
			  "LUKS payload offset of %u sectors is not between the LUKS header and the end of the %llu-byte area",
			  payload, (unsigned long long)e->crypto_length);
		payload_ok = false;
	}
	if (mk_iter == 0)
		qc_report(ps, QC_P_LUKS_ITERATIONS_ZERO, QC_LOC(base + 164), 1,
			  "LUKS master key digest iteration count is zero");
	if (key_bytes == 0 || key_bytes > LUKS_MAX_KEY_BYTES) {
		qc_report(ps, QC_P_LUKS_KEY_BYTES_INVALID, QC_LOC(base + 108), 1,
			  "LUKS master key size of %u bytes (1..%u)", key_bytes, LUKS_MAX_KEY_BYTES);
		return;
	}
	check_slots(img, v, base, key_bytes, payload_ok ? payload : (uint32_t)area_sectors,
		    area_sectors);
}
