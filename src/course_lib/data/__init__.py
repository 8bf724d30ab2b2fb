"""Datasets of the course: what ships inside ``course_lib`` and what is downloaded.

``download`` holds the one checksummed download helper (``fetch_verified``) and the cache
folder every full-mode download lands in; each dataset has its own module here: ``sst``
(chapter 3, SST-2 and SST-5, bundled with the package so quick mode needs no network).
"""
