/* SPDX-License-Identifier: MIT */
#include <stddef.h>

#include <apq/version.h>

#include "util.h"

APQ_EXPORT int apq_version(const char **string)
{
	if (string)
		*string = APQ_VERSION_STRING;
	return APQ_VERSION_NUMBER;
}
