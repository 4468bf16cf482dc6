/*
 * verdict.c - the check's verdict as an exit code (doc/contracts.md):
 * 63 unsupported, 1 could not complete, 2 corruption, 3 leaks only, 0 clean.
 */
#include "check.h"

int qc_check_exit_code(const struct qc_image *img)
{
	const struct qc_problems *ps = &img->problems;
	if (ps->unsupported)
		return 63;
	if (img->aborted || ps->oom)
		return 1;
	if (ps->corruptions)
		return 2;
	if (ps->leaks)
		return 3;
	return 0;
}
