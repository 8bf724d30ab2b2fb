/* How Attention Learns: marks display equations wider than the text column (checked by
   tests/browser). Such an equation scrolls sideways in its own box (course.css); this script says
   on which side more of it lies (data-course-more="left", "right" or "left right"), and course.css
   fades that edge, so a reader sees the equation goes on. Updated on scroll, and whenever the box
   or the equation changes size (the window, MathJax's fonts arriving). */
(function () {
  "use strict";
  const SELECTOR = 'article.bd-article mjx-container[jax="CHTML"][display="true"]';

  function mark(box) {
    const more = [];
    if (box.scrollLeft > 1) more.push("left");
    if (box.scrollLeft + box.clientWidth < box.scrollWidth - 1) more.push("right");
    if (more.length) box.setAttribute("data-course-more", more.join(" "));
    else box.removeAttribute("data-course-more");
  }

  const resized = window.ResizeObserver
    ? new ResizeObserver(function (entries) {
        entries.forEach(function (e) { mark(e.target.closest("mjx-container") || e.target); });
      })
    : null;

  function markAll() {
    document.querySelectorAll(SELECTOR).forEach(function (box) {
      if (!box.dataset.courseWatched) {
        box.dataset.courseWatched = "1";
        box.addEventListener("scroll", function () { mark(box); }, { passive: true });
        if (resized) {
          resized.observe(box);
          if (box.firstElementChild) resized.observe(box.firstElementChild);
        }
      }
      mark(box);
    });
  }

  function start() {
    const mj = window.MathJax;
    const ready = mj && mj.startup && mj.startup.promise ? mj.startup.promise : Promise.resolve();
    ready.then(markAll);
    if (document.fonts && document.fonts.ready) document.fonts.ready.then(markAll);
    window.addEventListener("resize", markAll);
  }

  if (document.readyState === "complete") start();
  else window.addEventListener("load", start);
})();
