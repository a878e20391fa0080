// What every screen shares: the signed-in user, the stages, the live event bus, navigation.

export const session = {
  me: null,
  stages: [],
  live: false,
  listeners: new Set(),
  stageName(key) {
    const stage = this.stages.find((s) => s.key === key);
    return stage ? stage.name : key;
  },
  skillName(stageKey, skillKey) {
    const stage = this.stages.find((s) => s.key === stageKey);
    const skill = stage && stage.skills.find((k) => k.key === skillKey);
    return skill ? skill.name : skillKey;
  },
  skillsOf(stageKey) {
    const stage = this.stages.find((s) => s.key === stageKey);
    return stage ? stage.skills : [];
  },
  // A screen listens to live events while it is shown (see onLeave).
  listen(listener) {
    this.listeners.add(listener);
    onLeave(() => this.listeners.delete(listener));
  },
};

export const leaving = [];

// Screens register what must stop when they are left (players, timers, listeners).
export function onLeave(cleanup) {
  leaving.push(cleanup);
}

export function navigate(path) {
  if (location.hash === "#" + path) window.dispatchEvent(new HashChangeEvent("hashchange"));
  else location.hash = path;
}
