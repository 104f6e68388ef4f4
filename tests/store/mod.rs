mod crash;
mod crash_views;
mod fixture;
mod shared_views;
