"""One module per chapter, ``chapters.chNN``: the recipes a chapter's notebook needs that are not
the story itself (run builders, evaluation tables, one chapter's figure helpers), imported by the
notebook (``from course_lib.chapters import ch06``) and by its exercise notebook.

This layer sits above the trainers, metrics and figures and below the checks: a chapter module
may import any of them, and nothing in the library but ``checks`` imports a chapter module.
"""
