/*
 * layout.h - qcow2 on-disk constants, masks and entry decoding helpers.
 *
 * Pure constants and inline arithmetic taken from the qcow2 specification
 * (docs/interop/qcow2.txt); nothing here touches image bytes.  All values
 * are host-endian; callers decode big-endian bytes with core/reader.h first.
 */
#ifndef QC_LAYOUT_H
#define QC_LAYOUT_H

#include <stdint.h>

#define QC_MAGIC 0x514649fbu

#define QC_MIN_CLUSTER_BITS 9
#define QC_MAX_CLUSTER_BITS 21
#define QC_V2_HEADER_LEN 72
#define QC_V3_MIN_HEADER_LEN 104
#define QC_HEADER_STRUCT_LEN 112

/* Header field offsets (bytes from the start of the file). */
#define QC_HDR_MAGIC 0
#define QC_HDR_VERSION 4
#define QC_HDR_BACKING_FILE_OFFSET 8
#define QC_HDR_BACKING_FILE_SIZE 16
#define QC_HDR_CLUSTER_BITS 20
#define QC_HDR_SIZE 24
#define QC_HDR_CRYPT_METHOD 32
#define QC_HDR_L1_SIZE 36
#define QC_HDR_L1_TABLE_OFFSET 40
#define QC_HDR_REFTABLE_OFFSET 48   /* u64, followed by ... */
#define QC_HDR_REFTABLE_CLUSTERS 56 /* ... u32: a rebuild switches both in one write */
#define QC_HDR_NB_SNAPSHOTS 60
#define QC_HDR_SNAPSHOTS_OFFSET 64
/* version 3 only (the version 2 header ends at QC_V2_HEADER_LEN) */
#define QC_HDR_INCOMPAT 72
#define QC_HDR_COMPAT 80
#define QC_HDR_AUTOCLEAR 88
#define QC_HDR_REFCOUNT_ORDER 96
#define QC_HDR_HEADER_LENGTH 100
#define QC_HDR_COMPRESSION_TYPE 104

#define QC_MAX_L1_SIZE (32u * 1024 * 1024)       /* bytes */
#define QC_MAX_REFTABLE_SIZE (8u * 1024 * 1024)  /* bytes */
#define QC_MAX_SNAPSHOTS 65536u
#define QC_MAX_SNAPSHOTS_SIZE (1024u * 65536u)   /* bytes */
#define QC_MAX_SNAPSHOT_EXTRA 1024u
#define QC_MAX_BACKING_NAME 1023u
#define QC_MAX_OFFSET ((UINT64_C(1) << 56) - 1)

/* Incompatible feature bits. */
#define QC_INCOMPAT_DIRTY (UINT64_C(1) << 0)
#define QC_INCOMPAT_CORRUPT (UINT64_C(1) << 1)
#define QC_INCOMPAT_DATA_FILE (UINT64_C(1) << 2)
#define QC_INCOMPAT_COMPRESSION (UINT64_C(1) << 3)
#define QC_INCOMPAT_EXTL2 (UINT64_C(1) << 4)
#define QC_INCOMPAT_KNOWN UINT64_C(0x1f)
/* Compatible feature bits. */
#define QC_COMPAT_LAZY_REFCOUNTS (UINT64_C(1) << 0)
#define QC_COMPAT_KNOWN UINT64_C(0x1)
/* Autoclear feature bits. */
#define QC_AUTOCLEAR_BITMAPS (UINT64_C(1) << 0)
#define QC_AUTOCLEAR_DATA_RAW (UINT64_C(1) << 1)
#define QC_AUTOCLEAR_KNOWN UINT64_C(0x3)

/* Crypt methods. */
#define QC_CRYPT_NONE 0
#define QC_CRYPT_AES 1
#define QC_CRYPT_LUKS 2

/* Compression types (header byte 104). */
#define QC_COMPRESSION_ZLIB 0
#define QC_COMPRESSION_ZSTD 1

/* Header extension magics. */
#define QC_EXT_END 0x00000000u
#define QC_EXT_BACKING_FORMAT 0xe2792acau
#define QC_EXT_FEATURE_TABLE 0x6803f857u
#define QC_EXT_BITMAPS 0x23852875u
#define QC_EXT_CRYPTO 0x0537be77u
#define QC_EXT_DATA_FILE 0x44415441u

/* Reftable entries. */
#define QC_REFT_OFFSET_MASK UINT64_C(0xfffffffffffffe00)
#define QC_REFT_RESERVED_MASK UINT64_C(0x1ff)

/* L1 entries. */
#define QC_L1E_OFFSET_MASK UINT64_C(0x00fffffffffffe00)
#define QC_L1E_RESERVED_MASK UINT64_C(0x7f000000000001ff)
#define QC_OFLAG_COPIED (UINT64_C(1) << 63)
#define QC_OFLAG_COMPRESSED (UINT64_C(1) << 62)
#define QC_OFLAG_ZERO (UINT64_C(1) << 0)

/* Standard L2 entries. */
#define QC_L2E_OFFSET_MASK UINT64_C(0x00fffffffffffe00)
#define QC_L2E_STD_RESERVED_MASK UINT64_C(0x3f000000000001fe)

/* Extended L2 subcluster bitmap. */
#define QC_SUBCLUSTERS 32
#define QC_L2_BITMAP_ALL_ALLOC UINT64_C(0x00000000ffffffff)
#define QC_L2_BITMAP_ALL_ZERO UINT64_C(0xffffffff00000000)

/* Bitmap directory / table. */
#define QC_BME_RESERVED_FLAGS 0xfffffffcu
#define QC_BME_FLAG_IN_USE 1u
#define QC_BME_FLAG_AUTO 2u
#define QC_BME_MAX_TABLE_SIZE 0x8000000u
#define QC_BME_MAX_PHYS_SIZE 0x20000000u
#define QC_BME_MAX_NAME 1023u
#define QC_BME_TABLE_RESERVED_MASK UINT64_C(0xff000000000001fe)
#define QC_BME_TABLE_OFFSET_MASK UINT64_C(0x00fffffffffffe00)
#define QC_MAX_BITMAPS 65535u
#define QC_MAX_BITMAP_DIR_SIZE (1024u * 65535u)

/* Compressed descriptor split for a given cluster_bits. */
static inline unsigned qc_csize_shift(unsigned cluster_bits)
{
	return 62 - (cluster_bits - 8);
}

static inline uint64_t qc_compressed_offset(uint64_t entry, unsigned cluster_bits)
{
	return entry & ((UINT64_C(1) << qc_csize_shift(cluster_bits)) - 1);
}

/* Number of 512-byte sectors, 1-based as stored plus one. */
static inline uint64_t qc_compressed_sectors(uint64_t entry, unsigned cluster_bits)
{
	uint64_t mask = (UINT64_C(1) << (cluster_bits - 8)) - 1;
	return ((entry >> qc_csize_shift(cluster_bits)) & mask) + 1;
}

#endif
