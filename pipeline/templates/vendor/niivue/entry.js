// What the review page (pipeline/templates/review.js) uses, as one global: window.niivue.
// gzipSync (fflate, already a NiiVue dependency) compresses the mask the page saves.
import { Niivue, NVImage } from "@niivue/niivue";
import { gzipSync } from "fflate";

// eslint-disable-next-line no-undef
window.niivue = { Niivue, NVImage, gzipSync, version: NIIVUE_VERSION };
