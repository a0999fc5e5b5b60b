//! The `Customer` type: totals derived from the customer's per-order rows,
//! and a paginated list of its orders.

use async_graphql::{ComplexObject, Result, SimpleObject, ID};
use projections::customer::CustomerView;

use crate::schema::inputs::page_size;
use crate::schema::types::{
    Money, OrderStatus, OrderSummary, OrderSummaryConnection, OrderSummaryEdge, PageInfo,
};

#[derive(Debug, Clone, SimpleObject)]
#[graphql(complex)]
pub struct Customer {
    pub id: ID,
    pub order_count: i32,
    pub open_orders: i32,
    pub lifetime_value: Vec<Money>,
    #[graphql(skip)]
    view: CustomerView,
}

impl Customer {
    pub fn new(id: String, view: CustomerView) -> Self {
        let lifetime_value = view
            .lifetime_value
            .iter()
            .filter_map(|(code, minor)| Money::of_code(*minor, code).ok())
            .collect();
        Self {
            id: ID(id),
            order_count: i32::try_from(view.orders.len()).unwrap_or(i32::MAX),
            open_orders: i32::try_from(view.open_orders).unwrap_or(i32::MAX),
            lifetime_value,
            view,
        }
    }
}

#[ComplexObject]
impl Customer {
    /// Orders oldest first; the cursor is the order id.
    async fn orders(
        &self,
        #[graphql(default = 50)] first: Option<i32>,
        after: Option<String>,
        status: Option<OrderStatus>,
    ) -> Result<OrderSummaryConnection> {
        let first = page_size("first", first, 50)?;
        let mut matching = self
            .view
            .orders
            .iter()
            .filter(|o| status.is_none_or(|s| OrderStatus::from(o.status) == s))
            .skip_while(|o| after.as_ref().is_some_and(|a| o.order_id != *a))
            .skip(usize::from(after.is_some()))
            .peekable();
        let mut edges = Vec::new();
        while edges.len() < first {
            let Some(order) = matching.next() else { break };
            edges.push(OrderSummaryEdge {
                cursor: order.order_id.clone(),
                node: OrderSummary {
                    id: ID(order.order_id.clone()),
                    status: order.status.into(),
                    total: Money::of_code(order.total, &order.currency)?,
                    placed_at: order.placed_at,
                },
            });
        }
        let page_info = PageInfo {
            has_next_page: matching.peek().is_some(),
            end_cursor: edges.last().map(|e| e.cursor.clone()),
        };
        Ok(OrderSummaryConnection { edges, page_info })
    }
}
