// The header menus are <details> elements so they work without JavaScript. This only adds what
// users expect from a menu: one open at a time, closed by a click elsewhere or by Escape.
(function () {
  "use strict";
  const menus = () => document.querySelectorAll("details.menu");

  document.addEventListener("click", (event) => {
    for (const menu of menus()) {
      if (menu.open && !menu.contains(event.target)) menu.open = false;
    }
  });

  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    for (const menu of menus()) {
      if (menu.open) {
        menu.open = false;
        menu.querySelector("summary").focus();
      }
    }
  });
})();
